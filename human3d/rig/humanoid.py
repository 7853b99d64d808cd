"""The rig's bones on a standard humanoid set (VRM / Unity Humanoid bone names), for Anny and SMPL-X.

Retargeting tools (Unity's Humanoid avatar, VRM, Blender add-ons, Mixamo-style retargeters) match bones by these
roles. Each model's joint names map onto them; bones without a role (Anny's twist bones ``upperarm02``,
``lowerleg02``..., its extra spine and neck segments, SMPL-X's jaw) stay in the rig and are simply not mapped.
"""

from __future__ import annotations

#: Humanoid bone roles in VRM 1.0 / Unity Humanoid names (torso, limbs, then fingers), required ones first.
HUMANOID_BONES: tuple[str, ...] = (
    "hips", "spine", "chest", "upperChest", "neck", "head", "leftEye", "rightEye", "jaw",
    "leftShoulder", "leftUpperArm", "leftLowerArm", "leftHand",
    "rightShoulder", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "leftToes",
    "rightUpperLeg", "rightLowerLeg", "rightFoot", "rightToes",
) + tuple(f"{side}{finger}{part}" for side in ("left", "right")
          for finger in ("Thumb", "Index", "Middle", "Ring", "Little")
          for part in (("Metacarpal", "Proximal", "Distal") if finger == "Thumb" else
                       ("Proximal", "Intermediate", "Distal")))

#: VRM's required bones: a mapping without any of them is not a humanoid.
REQUIRED_BONES: tuple[str, ...] = (
    "hips", "spine", "head", "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm", "rightLowerArm",
    "rightHand", "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg", "rightLowerLeg", "rightFoot",
)

_FINGERS = ("Thumb", "Index", "Middle", "Ring", "Little")


def _anny_map() -> dict[str, str]:
    # the same three spine joints the fit articulates (body.models: spine1..3)
    m = {"hips": "root", "spine": "spine05", "chest": "spine03", "upperChest": "spine01", "neck": "neck01",
         "head": "head", "leftEye": "eye.L", "rightEye": "eye.R"}
    for side, s in (("left", "L"), ("right", "R")):
        m.update({f"{side}Shoulder": f"clavicle.{s}", f"{side}UpperArm": f"upperarm01.{s}",
                  f"{side}LowerArm": f"lowerarm01.{s}", f"{side}Hand": f"wrist.{s}",
                  f"{side}UpperLeg": f"upperleg01.{s}", f"{side}LowerLeg": f"lowerleg01.{s}",
                  f"{side}Foot": f"foot.{s}", f"{side}Toes": f"toe1-1.{s}"})
        # Anny (MakeHuman): finger1 = thumb (finger1-1..3 chained on the wrist), finger2..5 = index..little, each
        # after its metacarpal bone
        m.update({f"{side}ThumbMetacarpal": f"finger1-1.{s}", f"{side}ThumbProximal": f"finger1-2.{s}",
                  f"{side}ThumbDistal": f"finger1-3.{s}"})
        for k, finger in enumerate(_FINGERS[1:], start=2):
            for part, n in (("Proximal", 1), ("Intermediate", 2), ("Distal", 3)):
                m[f"{side}{finger}{part}"] = f"finger{k}-{n}.{s}"
    return m


def _smplx_map() -> dict[str, str]:
    m = {"hips": "pelvis", "spine": "spine1", "chest": "spine2", "upperChest": "spine3", "neck": "neck",
         "head": "head", "jaw": "jaw", "leftEye": "left_eye_smplhf", "rightEye": "right_eye_smplhf"}
    smplx_finger = {"Thumb": "thumb", "Index": "index", "Middle": "middle", "Ring": "ring", "Little": "pinky"}
    for side in ("left", "right"):
        m.update({f"{side}Shoulder": f"{side}_collar", f"{side}UpperArm": f"{side}_shoulder",
                  f"{side}LowerArm": f"{side}_elbow", f"{side}Hand": f"{side}_wrist",
                  f"{side}UpperLeg": f"{side}_hip", f"{side}LowerLeg": f"{side}_knee",
                  f"{side}Foot": f"{side}_ankle", f"{side}Toes": f"{side}_foot"})
        for finger, name in smplx_finger.items():
            parts = ("Metacarpal", "Proximal", "Distal") if finger == "Thumb" else ("Proximal", "Intermediate", "Distal")
            for n, part in enumerate(parts, start=1):
                m[f"{side}{finger}{part}"] = f"{side}_{name}{n}"
    return m


MAPPINGS: dict[str, dict[str, str]] = {"anny": _anny_map(), "smplx": _smplx_map()}


def humanoid_map(model: str, joint_names: list[str]) -> dict[str, str]:
    """Humanoid role -> joint name for ``model`` ('anny' | 'smplx'), only the roles whose joint the rig has."""
    mapping = MAPPINGS.get(model, {})
    present = set(joint_names)
    return {role: name for role, name in mapping.items() if name in present}
