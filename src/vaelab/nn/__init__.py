"""Shared network pieces: backbones (encoder trunks, decoders) and small heads."""
from .backbones import BACKBONES, Decoder, Encoder, make_decoder, make_encoder
from .heads import GaussianHead

__all__ = ["BACKBONES", "Encoder", "Decoder", "make_encoder", "make_decoder", "GaussianHead"]
