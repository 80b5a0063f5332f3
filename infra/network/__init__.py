"""The e-government extranet: provider-network segments with QoS, and the boundary access platform."""

from .boundary import BoundaryAccessPlatform
from .extranet import Extranet

__all__ = ["BoundaryAccessPlatform", "Extranet"]
