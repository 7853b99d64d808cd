"""Person segmentation (DESIGN.md §1): the ``segment`` stage and its backends ``alpha``, ``mediapipe``, ``rembg``
and ``mask``, each in its own module and imported only when used."""

from human3d.segment.person import BACKENDS, choose_backend, segment_person

__all__ = ["BACKENDS", "choose_backend", "segment_person"]
