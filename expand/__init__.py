"""x3d-expand: the stepwise network expansion search of X3D (Feichtenhofer, CVPR 2020)."""

__version__ = "0.1.0"
