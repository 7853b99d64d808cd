"""DRPose training (Lee et al., "DRPose"): skeletal images of poses, the skeletal-image predictor g_skel, the
PoseScore reward, direct reward fine-tuning of the multi-view UNet, and the datasets they read.

Imports the inference code (``human3d.multiview``); nothing in inference imports this package.
"""
