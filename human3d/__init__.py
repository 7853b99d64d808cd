"""human3d: one photo of a person in, one textured, metric 3D mesh out."""

__version__ = "0.1.0"
