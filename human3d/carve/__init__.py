"""Carving: deform and remesh a starting mesh until its rendered normals and masks match the views.

``carve.carve_mesh`` is the pipeline stage; ``carve.carve_from_views`` carves any closed mesh toward any target
views; ``optimizer`` and ``remesh`` are continuous remeshing (Palfinger 2022) in plain PyTorch.
"""
