"""DINO-WM model family: DINOv2-layout encoder, frame-causal predictor, embeddings, decoder."""
from quantwm.models.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint, shipped_checkpoint
from quantwm.models.decoder import DecoderConfig
from quantwm.models.official import OfficialCheckpoint, load_official
from quantwm.models.predictor import PredictorConfig, frame_causal_mask
from quantwm.models.vit import ViTConfig
from quantwm.models.world_model import MODULE_GROUPS, Latents, WorldModel, WorldModelConfig

__all__ = [
    "MODULE_GROUPS", "CheckpointError", "DecoderConfig", "Latents", "OfficialCheckpoint", "PredictorConfig", "ViTConfig",
    "WorldModel", "WorldModelConfig", "frame_causal_mask", "load_checkpoint", "load_official", "read_meta",
    "save_checkpoint", "shipped_checkpoint",
]
