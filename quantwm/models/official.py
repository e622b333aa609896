"""Official DINO-WM checkpoints and DINOv2 weights, loaded into quantwm's own classes.

A DINO-WM run directory holds ``<root>/outputs/<name>/hydra.yaml`` (the training config) and
``<root>/outputs/<name>/checkpoints/model_latest.pth``: ``torch.save`` of a dict of *whole pickled
modules* (``predictor``, ``action_encoder``, ``proprio_encoder``, ``decoder``, their optimizers,
``epoch``). There is no encoder in it: the encoder is DINOv2 ViT-S/14, read here from a local
``dinov2_vits14_pretrain.pth`` (a file, or a torch-hub cache directory), never from the network.

Unpickling. By default the pickle goes through a restricted unpickler (``torch.load`` with our
``pickle_module``; torch requires ``weights_only=False`` with any ``pickle_module``, the restriction
is ours): DINO-WM's classes (``models.vit.*``, ``models.proprio.*``, ``models.vqvae.*``) become
inert ``PickledModule`` stand-ins that only hold their attributes; optimizers and ``accelerate``
wrappers become ``DiscardedObject``s; ``torch.nn`` module classes, tensor rebuild functions, dtypes
and plain containers resolve normally; any other global is refused before anything runs, with a
one-line ``CheckpointError`` naming it. ``trust_checkpoint=True`` resolves such other globals with
ordinary pickle, which can run arbitrary code: use it only for files you trust. DINO-WM's repository
is never needed, with or without trust.

Weights are then copied into quantwm modules (``ViTPredictor``, ``ProprioceptiveEmbedding``,
``VQVAE``) by strict state-dict loading. The predictor's mask ``bias`` (a plain tensor created on
CUDA, mapped to the CPU here) is checked to equal ``frame_causal_mask`` and is not kept (ours is a
derived buffer). The decoder's VQ codebook ``quantize_b`` (buffers ``embed`` / ``cluster_size`` /
``embed_avg``) is unused by DINO-WM's released decoders (``quantize`` False) and is dropped; a
decoder with ``quantize`` True is refused. Its ``info`` string and the predictor's ``pool`` are dropped.

Image pipeline (DINO-WM): frames rendered at ``img_size`` (224), normalised with mean / std 0.5,
resized to ``(img_size // 16) * 14`` = 196 px, 14 x 14 patches of 14 px; so the world model's
``image_size`` is 224 (what environments render) and its encoder's ``img_size`` 196.
Normalisation: the stats are not in the checkpoint. PushT uses DINO-WM's fixed constants; Wall
(and any env, to override) takes them from a stats JSON with keys ``action_mean``,
``action_std`` (per env step) and ``proprio_mean``, ``proprio_std``.
"""
from __future__ import annotations

import json
import pickle
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
import yaml
from torch import nn

from quantwm.envs import ENV_NAMES, ENV_SPECS
from quantwm.models.checkpoint import CheckpointError, load_state_strict
from quantwm.models.decoder import DecoderConfig
from quantwm.models.predictor import PredictorConfig, frame_causal_mask
from quantwm.models.vit import DinoVisionTransformer, ViTConfig
from quantwm.models.world_model import WorldModel, WorldModelConfig

DINOV2_FILE = "dinov2_vits14_pretrain.pth"
STATS_KEYS = ("action_mean", "action_std", "proprio_mean", "proprio_std")
# DINO-WM's fixed PushT normalisation (actions already divided by 100, as quantwm's PushT takes them).
PUSHT_STATS: dict[str, tuple[float, ...]] = {
    "action_mean": (-0.0087, 0.0068), "action_std": (0.2019, 0.2002),
    "proprio_mean": (236.6, 264.6, -2.93, 2.54), "proprio_std": (101.1, 87.0, 74.8, 74.1),
}
DINO_WM_CLASSES = (
    "models.vit.ViTPredictor", "models.vit.Transformer", "models.vit.Attention", "models.vit.FeedForward",
    "models.proprio.ProprioceptiveEmbedding",
    "models.vqvae.VQVAE", "models.vqvae.Decoder", "models.vqvae.ResBlock", "models.vqvae.Quantize",
)
# Checkpoint entry -> the DINO-WM class it must hold.
MODULE_KEYS = {
    "predictor": "models.vit.ViTPredictor", "action_encoder": "models.proprio.ProprioceptiveEmbedding",
    "proprio_encoder": "models.proprio.ProprioceptiveEmbedding", "decoder": "models.vqvae.VQVAE",
}
# Optimizer-side objects (not needed for inference): unpickled into DiscardedObject.
DISCARDED_MODULES = ("accelerate", "torch.optim", "torch.amp", "torch.cuda.amp")
ALLOWED_GLOBALS = frozenset({
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set", "builtins.frozenset", "builtins.slice",
    "builtins.int", "builtins.float", "builtins.complex", "builtins.bool", "builtins.str", "builtins.bytes",
    "builtins.bytearray", "collections.OrderedDict", "collections.defaultdict", "_codecs.encode",
    "torch.Size", "torch.device", "torch.Tensor", "torch.nn.parameter.Parameter",
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._tensor._rebuild_from_type_v2",
})
# Python 2 names that protocol-2 pickles use for builtins and collections.
PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class PickledModule(nn.Module):
    """Inert stand-in for one DINO-WM module class: unpickling restores its attributes (parameters,
    buffers, children, plain attributes such as the mask ``bias``) and nothing else; no forward."""

    dino_wm_class: ClassVar[str] = ""


class DiscardedObject:
    """Stand-in for optimizer-side objects: takes any arguments and state, keeps nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


STAND_INS: dict[str, type[PickledModule]] = {
    path: type(path.rsplit(".", 1)[1], (PickledModule,), {"dino_wm_class": path, "__module__": __name__})
    for path in DINO_WM_CLASSES
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (raised before it could be called)."""


def _unpickler_class(trusted: bool) -> type[pickle.Unpickler]:
    class OfficialUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            module = PY2_MODULES.get(module, module)
            path = f"{module}.{name}"
            if path in STAND_INS:
                return STAND_INS[path]
            if any(module == m or module.startswith(m + ".") for m in DISCARDED_MODULES):
                return DiscardedObject
            if path in ALLOWED_GLOBALS:
                return super().find_class(module, name)
            if module.startswith("torch.nn.modules.") and "." not in name:
                cls = super().find_class(module, name)
                if isinstance(cls, type) and issubclass(cls, nn.Module):
                    return cls
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            if trusted:
                return super().find_class(module, name)
            raise RefusedGlobal(path)

    return OfficialUnpickler


def _pickle_module(trusted: bool) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose Unpickler applies the mapping above."""
    mod = types.ModuleType(f"quantwm_official_pickle_{'trusted' if trusted else 'restricted'}")
    unpickler = _unpickler_class(trusted)
    mod.Unpickler = unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: unpickler(f, **kw).load()  # type: ignore[attr-defined]
    return mod


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_checkpoint(path: Path, trust_checkpoint: bool = False) -> dict[str, Any]:
    """Unpickle ``model_latest.pth`` on the CPU into a dict of ``PickledModule`` trees (module doc)."""
    if not path.is_file():
        raise CheckpointError(f"DINO-WM checkpoint {path} not found (expected <root>/outputs/<name>/checkpoints/model_latest.pth)")
    try:
        ckpt = torch.load(path, map_location="cpu", pickle_module=_pickle_module(trust_checkpoint), weights_only=False)
    except RefusedGlobal as e:
        raise CheckpointError(
            f"DINO-WM checkpoint {path} references the global {e}, which is not a DINO-WM, torch.nn, optimizer or "
            "tensor class; refusing it (use --trust-checkpoint / trust_checkpoint=True only for files you trust)"
        ) from None
    except Exception as e:  # noqa: BLE001  (torch.load raises many types on a corrupt file; report one line)
        raise CheckpointError(f"cannot read DINO-WM checkpoint {path}: {_first_line(e)}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"DINO-WM checkpoint {path} holds a {type(ckpt).__name__}, expected a dict of whole modules")
    for key, cls in MODULE_KEYS.items():
        value = ckpt.get(key)
        if value is None and key == "decoder":
            continue
        if getattr(value, "dino_wm_class", None) != cls:
            found = "nothing" if value is None else f"{type(value).__module__}.{type(value).__qualname__}"
            raise CheckpointError(f"DINO-WM checkpoint {path}: '{key}' is {found}, expected a pickled {cls}")
    return ckpt


# ---- hydra.yaml ---------------------------------------------------------------------------------
def read_hydra(path: Path) -> dict[str, Any]:
    """The training config as plain YAML; ``${...}`` interpolations stay opaque strings."""
    if not path.is_file():
        raise CheckpointError(f"DINO-WM config {path} not found (expected <root>/outputs/<name>/hydra.yaml)")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CheckpointError(f"DINO-WM config {path} is not valid YAML: {_first_line(e)}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"DINO-WM config {path} is not a YAML mapping")
    return cfg


def _get(cfg: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """``cfg["a"]["b"]`` for key "a.b", checked to be of ``kind`` (one-line error otherwise)."""
    value: Any = cfg
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise CheckpointError(f"DINO-WM config {path} has no '{key}' (expected {kind.__name__})")
        value = value[part]
    if isinstance(value, str) and "${" in value and kind is not str:
        raise CheckpointError(f"DINO-WM config {path}: '{key}' is the unresolved interpolation {value!r}, expected {kind.__name__}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"DINO-WM config {path}: '{key}' is {value!r}, expected {kind.__name__}")
    return value


def _require(cfg: dict[str, Any], key: str, expected: Any, path: Path) -> None:
    value = _get(cfg, key, type(expected), path)
    if value != expected:
        raise CheckpointError(f"DINO-WM config {path}: '{key}' is {value!r}; quantwm supports only {expected!r}")


# ---- stats and weights --------------------------------------------------------------------------
def read_stats(env: str, stats: str | Path | None) -> dict[str, tuple[float, ...]]:
    """Normalisation stats: the JSON at ``stats``, else DINO-WM's PushT constants (Wall needs the JSON)."""
    if stats is None:
        if env == "pusht":
            return PUSHT_STATS
        raise CheckpointError(
            f"DINO-WM {env} models need normalisation stats (not stored in the checkpoint): pass --stats / stats=PATH "
            f"to a JSON with keys {', '.join(STATS_KEYS)}"
        )
    path = Path(stats)
    if not path.is_file():
        raise CheckpointError(f"stats file {path} not found (expected a JSON with keys {', '.join(STATS_KEYS)})")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"stats file {path} is not valid JSON: {e}") from None
    missing = [k for k in STATS_KEYS if not isinstance(d, dict) or not isinstance(d.get(k), list)]
    if missing:
        raise CheckpointError(f"stats file {path} lacks the list(s) {', '.join(missing)}; expected keys {', '.join(STATS_KEYS)}")
    return {k: tuple(float(v) for v in d[k]) for k in STATS_KEYS}


def dinov2_path(weights: str | Path) -> Path:
    """``weights`` itself, or ``dinov2_vits14_pretrain.pth`` inside a torch-hub cache directory."""
    p = Path(weights)
    if p.is_dir():
        for candidate in (p / DINOV2_FILE, p / "checkpoints" / DINOV2_FILE, p / "hub" / "checkpoints" / DINOV2_FILE):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"no {DINOV2_FILE} in {p}, {p / 'checkpoints'} or {p / 'hub' / 'checkpoints'}")
    if not p.is_file():
        raise CheckpointError(f"DINOv2 weights {p} not found (expected {DINOV2_FILE} or a torch-hub cache directory)")
    return p


def load_dinov2(encoder: DinoVisionTransformer, weights: str | Path) -> None:
    """Load an official DINOv2 ViT-S/14 state dict (tensors only, ``weights_only=True``) strictly."""
    path = dinov2_path(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch.load raises many types on a bad file; report one line)
        raise CheckpointError(f"cannot read DINOv2 weights {path}: {_first_line(e)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"DINOv2 weights {path} are not a state dict of tensors (expected {DINOV2_FILE})")
    load_state_strict(encoder, state, f"DINOv2 weights {path} do not match DINOv2 ViT-S/14")


def _check_masks(predictor: PickledModule, num_hist: int, num_patches: int, path: Path) -> None:
    """Every attention's ``bias`` (1, 1, N, N), nonzero = may attend, must be the frame-causal mask."""
    expected = frame_causal_mask(num_hist, num_patches)
    n = expected.shape[0]
    layers = [m for m in predictor.modules() if getattr(m, "dino_wm_class", None) == "models.vit.Attention"]
    for i, attn in enumerate(layers):
        bias = vars(attn).get("bias")
        if not isinstance(bias, torch.Tensor) or bias.shape != (1, 1, n, n) or not torch.equal(bias[0, 0] != 0, expected):
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else None
            raise CheckpointError(
                f"DINO-WM checkpoint {path}: attention {i}'s mask 'bias' (shape {shape}) is not the frame-causal mask "
                f"of {num_hist} frames x {num_patches} patches (expected shape (1, 1, {n}, {n}))"
            )


# ---- the loader ---------------------------------------------------------------------------------
def load_official(root: str | Path, name: str, dinov2_weights: str | Path, device: str | torch.device = "cpu",
                  stats: str | Path | None = None, trust_checkpoint: bool = False) -> WorldModel:
    """The DINO-WM run ``<root>/outputs/<name>`` as a quantwm ``WorldModel`` on ``device`` (eval mode).

    ``dinov2_weights``: ``dinov2_vits14_pretrain.pth`` or a torch-hub cache directory holding it.
    ``stats``: normalisation JSON (required for Wall; PushT defaults to DINO-WM's constants).
    ``trust_checkpoint``: resolve globals outside the allow-list with ordinary pickle, which can run
    arbitrary code; only for files you trust. Errors are one-line ``CheckpointError``s.
    """
    run = Path(root) / "outputs" / name
    hydra_path, ckpt_path = run / "hydra.yaml", run / "checkpoints" / "model_latest.pth"
    cfg = read_hydra(hydra_path)
    env = _get(cfg, "env.name", str, hydra_path)
    if env not in ENV_NAMES:
        raise CheckpointError(f"DINO-WM config {hydra_path}: env '{env}' is not supported; valid: {', '.join(ENV_NAMES)}")
    for key, expected in (("encoder.name", "dinov2_vits14"), ("concat_dim", 1), ("num_pred", 1),
                          ("num_action_repeat", 1), ("num_proprio_repeat", 1)):
        _require(cfg, key, expected, hydra_path)
    img_size, num_hist = _get(cfg, "img_size", int, hydra_path), _get(cfg, "num_hist", int, hydra_path)
    ckpt = read_checkpoint(ckpt_path, trust_checkpoint)
    predictor = ckpt["predictor"]
    qkv = predictor.state_dict().get("transformer.layers.0.0.to_qkv.weight")
    heads = _get(cfg, "predictor.heads", int, hydra_path)
    if qkv is None or qkv.shape[0] % (3 * heads):
        raise CheckpointError(f"DINO-WM checkpoint {ckpt_path}: predictor has no to_qkv weight of 3 x {heads} heads "
                              f"at transformer.layers.0.0 (expected DINO-WM's ViTPredictor)")
    decoder = ckpt.get("decoder")
    if decoder is not None and vars(decoder).get("quantize") is not False:
        raise CheckpointError(f"DINO-WM checkpoint {ckpt_path}: decoder has quantize={vars(decoder).get('quantize')!r}; "
                              "quantwm supports DINO-WM's released decoders (quantize False)")
    spec = ENV_SPECS[env]
    predictor_cfg = PredictorConfig(
        depth=_get(cfg, "predictor.depth", int, hydra_path), heads=heads, dim_head=qkv.shape[0] // (3 * heads),
        mlp_dim=_get(cfg, "predictor.mlp_dim", int, hydra_path), dropout=_get(cfg, "predictor.dropout", float, hydra_path),
        emb_dropout=_get(cfg, "predictor.emb_dropout", float, hydra_path),
    )
    decoder_cfg = None if decoder is None else DecoderConfig(
        channel=_get(cfg, "decoder.channel", int, hydra_path), n_res_block=_get(cfg, "decoder.n_res_block", int, hydra_path),
        n_res_channel=_get(cfg, "decoder.n_res_channel", int, hydra_path), upsample_stride=4, dec_stride=4,
    )
    sizes = {key: _get(cfg, key, int, hydra_path) for key in ("frameskip", "action_emb_dim", "proprio_emb_dim")}
    env_stats = read_stats(env, stats)
    try:
        wm_cfg = WorldModelConfig(
            env=env, image_size=img_size, num_hist=num_hist, action_dim=spec.action_dim, proprio_dim=spec.proprio_dim,
            encoder=ViTConfig.dinov2_vits14(img_size=(img_size // 16) * 14), predictor=predictor_cfg,
            decoder=decoder_cfg, **sizes, **env_stats,
        )
    except ValueError as e:  # stats of the wrong length
        raise CheckpointError(f"stats {stats or 'PushT constants'} do not fit DINO-WM's {env}: {e}") from None
    model = WorldModel(wm_cfg)
    _check_masks(predictor, num_hist, wm_cfg.encoder.num_patches, ckpt_path)
    for key in ("predictor", "action_encoder", "proprio_encoder"):
        load_state_strict(getattr(model, key), ckpt[key].state_dict(),
                     f"DINO-WM checkpoint {ckpt_path}: '{key}' does not match {hydra_path}")
    if decoder is not None:
        state = {k: v for k, v in decoder.state_dict().items() if not k.startswith("quantize_b.")}
        load_state_strict(model.decoder, state, f"DINO-WM checkpoint {ckpt_path}: 'decoder' does not match {hydra_path}")
    load_dinov2(model.encoder, dinov2_weights)
    return model.to(device).eval()


@dataclass(frozen=True)
class OfficialCheckpoint:
    """Where an official DINO-WM model lives (arguments of ``load_official``)."""

    root: Path
    name: str
    dinov2_weights: Path
    stats: Path | None = None
    trust_checkpoint: bool = False

    def load(self, device: str | torch.device = "cpu") -> WorldModel:
        return load_official(self.root, self.name, self.dinov2_weights, device=device, stats=self.stats,
                             trust_checkpoint=self.trust_checkpoint)
