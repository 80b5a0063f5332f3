"""The e-government extranet: provider-network segments with QoS, and the boundary access platform."""

from .boundary import BoundaryAccessPlatform, BoundaryAccessPlatformArgs
from .extranet import Extranet, ExtranetArgs

__all__ = ["BoundaryAccessPlatform", "BoundaryAccessPlatformArgs", "Extranet", "ExtranetArgs"]
