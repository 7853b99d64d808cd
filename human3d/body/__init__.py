"""Body estimation: mediapipe landmarks (:mod:`.keypoints`), body models behind one protocol (:mod:`.models`: Anny,
SMPL-X), and the fit in the canonical frame (:mod:`.fit`, the pipeline stage ``fit_body``)."""
