"""Evaluation: the metrics of DRPose's Tables 1 and 2 (:mod:`human3d.eval.metrics`), the AlexNet LPIPS
(:mod:`human3d.eval.lpips`) and the benchmark protocol (:mod:`human3d.eval.bench`)."""

from human3d.eval.metrics import (
    ALIGNMENTS,
    EVAL_AZIMUTHS,
    AppearanceScores,
    EvalResult,
    EvalSettings,
    GeometryScores,
    evaluate,
    geometry_scores,
    sample_surface,
)

__all__ = ["ALIGNMENTS", "EVAL_AZIMUTHS", "AppearanceScores", "EvalResult", "EvalSettings", "GeometryScores",
           "evaluate", "geometry_scores", "sample_surface"]
