"""Official DINO-WM checkpoints: a tiny checkpoint pickled from classes with DINO-WM's class paths and
attribute names (written here from the architecture facts), loaded by ``load_official`` without those
classes, must compute what the originals compute; bad input gives one line naming file and expectation.
"""
from __future__ import annotations

import enum
import json
import os
import pickle
import sys
import types
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from torch import nn

from quantwm.cli import main
from quantwm.models import CheckpointError, OfficialCheckpoint, load_official
from quantwm.models.official import PUSHT_STATS

P, E = 196, 384  # 14 x 14 patches of DINOv2 ViT-S/14 at 196 px
HEADS, DIM_HEAD, MLP, DEPTH = 2, 8, 16, 2


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- DINO-WM's classes, as its checkpoints name them -------------------------------------------
def block_causal(frames: int, patches: int) -> torch.Tensor:
    """(1, 1, N, N) float, 1 where a token of frame i may see a token of frame j <= i."""
    return torch.kron(torch.tril(torch.ones(frames, frames)), torch.ones(patches, patches))[None, None]


class Attention(nn.Module):
    __module__ = "models.vit"

    def __init__(self, dim: int, heads: int, dim_head: int, frames: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.attend = nn.Softmax(dim=-1)
        self.dropout = nn.Dropout(0.0)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))
        self.bias = block_causal(frames, P)  # a plain attribute, as in DINO-WM (there on CUDA)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        dots = (q @ k.transpose(-1, -2) * self.scale).masked_fill(self.bias[:, :, :n, :n] == 0, float("-inf"))
        out = self.dropout(self.attend(dots)) @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    __module__ = "models.vit"

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(hidden, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    __module__ = "models.vit"

    def __init__(self, dim: int, depth: int, frames: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, HEADS, DIM_HEAD, frames), FeedForward(dim, MLP)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class ViTPredictor(nn.Module):
    __module__ = "models.vit"

    def __init__(self, frames: int, dim: int, depth: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, frames * P, dim))
        self.dropout = nn.Dropout(0.0)
        self.transformer = Transformer(dim, depth, frames)
        self.pool = "mean"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim): positions pos[:, :N], then the transformer."""
        return self.transformer(self.dropout(x + self.pos_embedding[:, : x.shape[1]]))


class ProprioceptiveEmbedding(nn.Module):
    __module__ = "models.proprio"

    def __init__(self, in_chans: int, emb_dim: int = 10) -> None:
        super().__init__()
        self.in_chans, self.emb_dim = in_chans, emb_dim
        self.patch_embed = nn.Conv1d(in_chans, emb_dim, kernel_size=1, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, in_chans) -> (B, T, emb_dim)."""
        return self.patch_embed(x.permute(0, 2, 1)).permute(0, 2, 1)


class ResBlock(nn.Module):
    __module__ = "models.vqvae"

    def __init__(self, in_channel: int, channel: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(in_channel, channel, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channel, in_channel, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class Decoder(nn.Module):
    __module__ = "models.vqvae"

    def __init__(self, in_channel: int, out_channel: int, channel: int, n_res_block: int, n_res_channel: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Conv2d(in_channel, channel, 3, padding=1), *[ResBlock(channel, n_res_channel) for _ in range(n_res_block)],
            nn.ReLU(inplace=True), nn.ConvTranspose2d(channel, channel // 2, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(channel // 2, out_channel, 4, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Quantize(nn.Module):
    __module__ = "models.vqvae"

    def __init__(self, dim: int, n_embed: int) -> None:
        super().__init__()
        self.dim, self.n_embed, self.decay, self.eps = dim, n_embed, 0.99, 1e-5
        self.register_buffer("embed", torch.randn(dim, n_embed))
        self.register_buffer("cluster_size", torch.zeros(n_embed))
        self.register_buffer("embed_avg", torch.randn(dim, n_embed))


class VQVAE(nn.Module):
    __module__ = "models.vqvae"

    def __init__(self, channel: int, n_res_block: int, n_res_channel: int, n_embed: int) -> None:
        super().__init__()
        self.quantize = False
        self.quantize_b = Quantize(E, n_embed)
        self.upsample_b = Decoder(E, E, channel, n_res_block, n_res_channel)
        self.dec = Decoder(E, 3, channel, n_res_block, n_res_channel)
        self.info = f"channel: {channel}, n_embed: {n_embed}"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(b, t, P, E) -> (b, t, 3, 224, 224)."""
        b, t, _, e = z.shape
        grid = z.reshape(b * t, 14, 14, e).permute(0, 3, 1, 2)
        out = self.dec(self.upsample_b(grid))
        return out.reshape(b, t, *out.shape[1:])


class DistributedType(str, enum.Enum):
    __module__ = "accelerate.utils.dataclasses"
    NO = "NO"


class AcceleratorState:
    __module__ = "accelerate.state"

    def __init__(self) -> None:
        self.distributed_type, self.device, self.num_processes = DistributedType.NO, torch.device("cpu"), 1


class AcceleratedOptimizer:
    __module__ = "accelerate.optimizer"

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer, self.scaler, self.accelerator_state = optimizer, None, AcceleratorState()


FAKE_MODULES = {
    "models.vit": (ViTPredictor, Transformer, Attention, FeedForward),
    "models.proprio": (ProprioceptiveEmbedding,),
    "models.vqvae": (VQVAE, Decoder, ResBlock, Quantize),
    "accelerate.optimizer": (AcceleratedOptimizer,),
    "accelerate.state": (AcceleratorState,),
    "accelerate.utils.dataclasses": (DistributedType,),
}


def optimizer_of(module: nn.Module) -> AcceleratedOptimizer:
    """An AdamW that has taken one step (so it has state tensors), wrapped as accelerate does."""
    opt = torch.optim.AdamW(module.parameters(), lr=5e-4)
    sum(p.sum() for p in module.parameters()).backward()
    opt.step()
    module.zero_grad()
    return AcceleratedOptimizer(opt)


def save_official(path: Path, ckpt: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save with DINO-WM's module paths importable, the attention masks stored as CUDA tensors."""
    masks = {m.bias.untyped_storage().data_ptr() for v in ckpt.values() if isinstance(v, nn.Module)
             for m in v.modules() if isinstance(m, Attention)}
    tag = torch.serialization.location_tag
    with monkeypatch.context() as m:
        for name, classes in FAKE_MODULES.items():
            parts = name.split(".")
            for i in range(1, len(parts)):  # parent packages, for pickle's import
                m.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
            m.setitem(sys.modules, name, types.ModuleType(name))
        for name, classes in FAKE_MODULES.items():
            for cls in classes:
                setattr(sys.modules[name], cls.__name__, cls)
        m.setattr(torch.serialization, "location_tag", lambda s: "cuda:0" if s.data_ptr() in masks else tag(s))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, path)
    assert not any(name.split(".")[0] in sys.modules for name in FAKE_MODULES)


HYDRA = """\
img_size: 224
frameskip: 5
concat_dim: 1
action_emb_dim: 10
proprio_emb_dim: 10
num_action_repeat: 1
num_proprio_repeat: 1
num_hist: {num_hist}
num_pred: 1
has_decoder: true
env:
  name: {env}
  dataset:
    data_path: ${{oc.env:DATASET_DIR}}/{env}
encoder:
  name: dinov2_vits14
  feature_key: x_norm_patchtokens
decoder:
  channel: 8
  n_embed: 16
  n_res_block: 1
  n_res_channel: 4
  quantize: false
predictor:
  depth: {depth}
  heads: {heads}
  mlp_dim: {mlp}
  dropout: 0.1
  emb_dropout: 0
  pool: mean
training:
  batch_size: 32
  predictor_lr: 0.0005
"""


def write_run(root: Path, name: str, monkeypatch: pytest.MonkeyPatch, env: str = "pusht", num_hist: int = 3,
              depth: int = DEPTH, **replace: object) -> dict:
    """A run in the official layout; returns the original modules. ``replace`` swaps checkpoint entries."""
    torch.manual_seed(0)
    proprio_dim = {"pusht": 4, "wall": 2}[env]
    modules = {
        "predictor": ViTPredictor(num_hist, E + 20, depth), "action_encoder": ProprioceptiveEmbedding(10),
        "proprio_encoder": ProprioceptiveEmbedding(proprio_dim), "decoder": VQVAE(8, 1, 4, 16),
    }
    ckpt: dict = {"epoch": 100, **modules}
    for key, module in modules.items():
        ckpt[f"{key}_optimizer"] = optimizer_of(module)
    ckpt.update(replace)
    run = root / "outputs" / name
    save_official(run / "checkpoints" / "model_latest.pth", ckpt, monkeypatch)
    (run / "hydra.yaml").write_text(HYDRA.format(env=env, num_hist=num_hist, depth=DEPTH, heads=HEADS, mlp=MLP))
    return modules


def dinov2_state(embed: int = 384, depth: int = 12) -> dict[str, torch.Tensor]:
    """Official dinov2_vits14_pretrain.pth names and shapes (pos_embed for the 37 x 37 grid), random values."""
    d = embed
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + 37 * 37, d), "mask_token": (1, d),
              "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,), "norm.weight": (d,), "norm.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes |= {b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
                   b + "attn.qkv.bias": (3 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                   b + "ls1.gamma": (d,), b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                   b + "mlp.fc1.weight": (4 * d, d), b + "mlp.fc1.bias": (4 * d,), b + "mlp.fc2.weight": (d, 4 * d),
                   b + "mlp.fc2.bias": (d,), b + "ls2.gamma": (d,)}
    gen = torch.Generator().manual_seed(1)
    return {k: 0.02 * torch.randn(s, generator=gen) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hub") / "checkpoints" / "dinov2_vits14_pretrain.pth"
    path.parent.mkdir()
    torch.save(dinov2_state(), path)
    return path


class FakeFreeUnpickler(pickle.Unpickler):
    """Ordinary unpickling, but DINO-WM's classes are not importable here: stand in with nn.Module."""

    def find_class(self, module: str, name: str) -> object:
        return nn.Module if module.startswith("models.") else super().find_class(module, name)


# ---- equivalence --------------------------------------------------------------------------------
def test_loaded_model_computes_what_dino_wm_computes(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    originals = write_run(tmp_path, "pusht_run", monkeypatch)
    if not torch.cuda.is_available():  # the masks really are stored as CUDA tensors
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "outputs/pusht_run/checkpoints/model_latest.pth", weights_only=False,
                       pickle_module=types.SimpleNamespace(Unpickler=FakeFreeUnpickler, load=None, __name__="p"))
    model = load_official(tmp_path, "pusht_run", dinov2_weights=dinov2)
    cfg = model.cfg
    assert (cfg.env, cfg.image_size, cfg.encoder.img_size, cfg.encoder.num_patches, cfg.num_hist) == ("pusht", 224, 196, P, 3)
    assert (cfg.predictor.depth, cfg.predictor.heads, cfg.predictor.dim_head, cfg.predictor.mlp_dim) == (DEPTH, HEADS, DIM_HEAD, MLP)
    assert {k: getattr(cfg, k) for k in PUSHT_STATS} == PUSHT_STATS
    assert not model.training
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for frames in (3, 1, 2):  # full window and shorter ones (positions and mask sliced)
            x = torch.randn(2, frames * P, E + 20, generator=gen)
            err = (model.predictor(x) - originals["predictor"].eval()(x)).abs().max().item()
            assert err < 1e-5, (frames, err)
        a, p = torch.randn(2, 4, 10, generator=gen), torch.randn(2, 4, 4, generator=gen)
        assert (model.action_encoder(a) - originals["action_encoder"](a)).abs().max() < 1e-5
        assert (model.proprio_encoder(p) - originals["proprio_encoder"](p)).abs().max() < 1e-5
        z = torch.randn(1, 2, P, E, generator=gen)
        assert (model.decoder(z) - originals["decoder"](z)).abs().max() < 1e-5
        frames = torch.randint(0, 256, (1, 1, 224, 224, 3), dtype=torch.uint8, generator=gen)
        assert model.encode_frames(frames).shape == (1, 1, P, E)
        assert model.decode(torch.randn(1, 1, P, E, generator=gen)).shape == (1, 1, 224, 224, 3)


def test_dinov2_layout_loads_strictly_from_a_file_or_a_hub_cache(tmp_path: Path, dinov2: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, "run", monkeypatch)
    for weights in (dinov2, dinov2.parent.parent):  # .../hub/checkpoints/dinov2_vits14_pretrain.pth, or .../hub
        model = load_official(tmp_path, "run", dinov2_weights=weights)
        loaded = model.encoder.state_dict()
        expected = torch.load(dinov2, weights_only=True)
        assert loaded.keys() == expected.keys()
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_only_a_trusted_checkpoint_may_name_other_globals(tmp_path: Path, dinov2: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, "plain", monkeypatch)
    write_run(tmp_path, "fraction", monkeypatch, epoch=Fraction(100, 1))
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "fraction", dinov2_weights=dinov2)
    assert "references the global fractions.Fraction" in one_line(e)
    a = load_official(tmp_path, "plain", dinov2_weights=dinov2)
    b = OfficialCheckpoint(tmp_path, "fraction", dinov2, trust_checkpoint=True).load()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_wall_takes_its_stats_from_a_json(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, "wall_run", monkeypatch, env="wall", num_hist=1)
    with pytest.raises(CheckpointError, match="need normalisation stats.*--stats"):
        load_official(tmp_path, "wall_run", dinov2_weights=dinov2)
    stats = {"action_mean": [0.1, -0.1], "action_std": [1.5, 1.6], "proprio_mean": [32.0, 31.0], "proprio_std": [14.0, 15.0]}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    model = load_official(tmp_path, "wall_run", dinov2_weights=dinov2, stats=tmp_path / "stats.json")
    assert model.cfg.env == "wall" and model.cfg.num_hist == 1 and model.cfg.proprio_std == (14.0, 15.0)
    (tmp_path / "bad.json").write_text(json.dumps({**stats, "proprio_mean": [1.0, 2.0, 3.0]}))
    with pytest.raises(CheckpointError, match="bad.json do not fit DINO-WM's wall: proprio_mean has 3 values, expected 2"):
        load_official(tmp_path, "wall_run", dinov2_weights=dinov2, stats=tmp_path / "bad.json")


def test_cli_evaluates_an_official_checkpoint(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, "wall_run", monkeypatch, env="wall", num_hist=1)
    stats = {"action_mean": [0.0, 0.0], "action_std": [1.0, 1.0], "proprio_mean": [32.0, 32.0], "proprio_std": [15.0, 15.0]}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    official = ["--checkpoint-root", str(tmp_path), "--model-name", "wall_run", "--dinov2", str(dinov2)]
    argv = ["--threads", "1", "eval", "--env", "wall", "--planner", "cem", "--samples", "4", "--topk", "2",
            "--opt-steps", "1", "--horizon", "1", "--budget", "1", "--episodes", "1", "--quiet",
            *official, "--stats", str(tmp_path / "stats.json"), "--json", str(tmp_path / "out.json")]
    assert main(argv) == 0
    records = json.loads((tmp_path / "out.json").read_text())["results"][0]["episodes"]
    assert len(records) == 1 and len(records[0]["env_actions"]) == 5  # one planner step = frameskip env steps
    for extra, message in (([], "need normalisation stats"),
                           (["--checkpoint", "x.json"], "give --checkpoint or --checkpoint-root, not both")):
        assert main(["eval", "--env", "wall", *official, *extra]) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["eval", "--env", "pusht", *official, "--stats", str(tmp_path / "stats.json")]) == 2
    assert "is a 'wall' model, not 'pusht'" in capsys.readouterr().err
    assert main(["eval", "--env", "wall", "--checkpoint-root", str(tmp_path), "--model-name", "wall_run"]) == 2
    assert "--checkpoint-root needs --model-name NAME and --dinov2 PATH" in capsys.readouterr().err
    assert main(["eval", "--env", "wall", "--dinov2", str(dinov2)]) == 2
    assert "--dinov2 given without --checkpoint-root ROOT" in capsys.readouterr().err


# ---- bad input ----------------------------------------------------------------------------------
def one_line(e: pytest.ExceptionInfo[CheckpointError]) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("remove, message", [
    ("outputs/run/hydra.yaml", r"DINO-WM config .*outputs/run/hydra.yaml not found \(expected <root>/outputs/<name>/hydra.yaml\)"),
    ("outputs/run/checkpoints/model_latest.pth",
     r"DINO-WM checkpoint .*model_latest.pth not found \(expected <root>/outputs/<name>/checkpoints/model_latest.pth\)"),
])
def test_missing_run_files(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch, remove: str, message: str) -> None:
    write_run(tmp_path, "run", monkeypatch)
    (tmp_path / remove).unlink()
    with pytest.raises(CheckpointError, match=message) as e:
        load_official(tmp_path, "run", dinov2_weights=dinov2)
    one_line(e)


def test_missing_dinov2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, "run", monkeypatch)
    with pytest.raises(CheckpointError, match=r"DINOv2 weights .*nope.pth not found \(expected dinov2_vits14_pretrain.pth"):
        load_official(tmp_path, "run", dinov2_weights=tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match=r"no dinov2_vits14_pretrain.pth in .*outputs"):
        load_official(tmp_path, "run", dinov2_weights=tmp_path / "outputs")


def test_dinov2_of_the_wrong_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, "run", monkeypatch)
    torch.save(dinov2_state(embed=192, depth=1), tmp_path / "vitt.pth")  # a ViT-Ti-sized file
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "run", dinov2_weights=tmp_path / "vitt.pth")
    msg = one_line(e)
    assert "DINOv2 weights" in msg and "vitt.pth do not match DINOv2 ViT-S/14" in msg
    assert "missing: blocks.1." in msg and "cls_token (1, 1, 192) vs (1, 1, 384)" in msg


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_another_global_is_refused_and_nothing_runs(tmp_path: Path, dinov2: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    write_run(tmp_path, "run", monkeypatch, epoch=Exploit(marker))
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "run", dinov2_weights=dinov2)
    msg = one_line(e)
    assert "model_latest.pth references the global posix.system" in msg and "--trust-checkpoint" in msg
    assert not marker.exists()


def test_a_checkpoint_of_another_architecture(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, "linear", monkeypatch, predictor=nn.Linear(3, 3))
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "linear", dinov2_weights=dinov2)
    assert "'predictor' is torch.nn.modules.linear.Linear, expected a pickled models.vit.ViTPredictor" in one_line(e)
    write_run(tmp_path, "shallow", monkeypatch, depth=1)  # hydra.yaml still says depth 2
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "shallow", dinov2_weights=dinov2)
    msg = one_line(e)
    assert "'predictor' does not match" in msg and "hydra.yaml" in msg and "missing: transformer.layers.1." in msg
    torch.save({"predictor": {"pos_embedding": torch.zeros(1)}}, tmp_path / "outputs/shallow/checkpoints/model_latest.pth")
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "shallow", dinov2_weights=dinov2)
    assert "'predictor' is builtins.dict, expected a pickled models.vit.ViTPredictor" in one_line(e)


def test_a_mask_that_is_not_frame_causal(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = ViTPredictor(3, E + 20, DEPTH)
    predictor.transformer.layers[1][0].bias = torch.tril(torch.ones(3 * P, 3 * P))[None, None]  # token-causal
    write_run(tmp_path, "run", monkeypatch, predictor=predictor)
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "run", dinov2_weights=dinov2)
    assert "attention 1's mask 'bias' (shape (1, 1, 588, 588)) is not the frame-causal mask of 3 frames x 196 patches" in one_line(e)


@pytest.mark.parametrize("edit, message", [
    (("num_hist: 3", "num_hist: ${oc.select:x}"), "'num_hist' is the unresolved interpolation '${oc.select:x}', expected int"),
    (("name: pusht", "name: point_maze"), "env 'point_maze' is not supported; valid: pusht, wall"),
    (("name: dinov2_vits14", "name: dinov2_vitb14"), "'encoder.name' is 'dinov2_vitb14'; quantwm supports only 'dinov2_vits14'"),
    (("  mlp_dim: 16\n", ""), "has no 'predictor.mlp_dim' (expected int)"),
    (("img_size: 224", "img_size: [224"), "is not valid YAML"),
])
def test_bad_hydra_config(tmp_path: Path, dinov2: Path, monkeypatch: pytest.MonkeyPatch, edit: tuple[str, str],
                          message: str) -> None:
    write_run(tmp_path, "run", monkeypatch)
    hydra = tmp_path / "outputs/run/hydra.yaml"
    hydra.write_text(hydra.read_text().replace(*edit))
    with pytest.raises(CheckpointError) as e:
        load_official(tmp_path, "run", dinov2_weights=dinov2)
    msg = one_line(e)
    assert str(hydra) in msg and message in msg
