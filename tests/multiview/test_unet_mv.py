"""The multi-view UNet: exact PSHuman state_dict, and its attention semantics against naive loops."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0

from human3d.multiview.unet_mv import (
    JointCrossDomainAttnProcessor,
    RowwiseMVAttnProcessor,
    UNetMV2DConditionModel,
    fuse_face_into_front,
    translate_pshuman_unet_config,
)
from tests.conftest import shared_file
from tests.multiview.tiny import tiny_unet, tiny_unet_config


def test_real_config_matches_pshuman_manifest():
    manifest = json.loads(shared_file("pshuman_unet_manifest.json").read_text())
    with torch.device("meta"):
        unet = UNetMV2DConditionModel.from_config(manifest["config"])
    ours = [[name, list(t.shape)] for name, t in unet.state_dict().items()]
    assert ours == [[n, list(s)] for n, s in manifest["params"]]  # every name and shape, in PSHuman's order
    assert len(ours) == manifest["num_state_dict_entries"] == 802
    assert sum(t.numel() for t in unet.state_dict().values()) == manifest["num_parameters"] == 919_783_684
    assert len(unet.multiview_blocks) == 16
    assert unet.config.face_view_index == 6 and unet.config.num_views == 7


def test_pshuman_config_switches_are_checked():
    config = {"num_views": 5, "mvcd_attention": True, "down_block_types": ["CrossAttnDownBlockMV2D"]}
    out = translate_pshuman_unet_config(config)
    assert out["face_view_index"] == 4 and out["down_block_types"] == ["CrossAttnDownBlock2D"]
    with pytest.raises(ValueError, match="cd_attention_mid"):
        translate_pshuman_unet_config({"cd_attention_mid": True})


def _attention(q, k, v, heads):
    """Naive softmax attention on (L, C) tensors."""
    d = q.shape[-1] // heads
    out = []
    for h in range(heads):
        qs, ks, vs = (t[:, h * d:(h + 1) * d] for t in (q, k, v))
        out.append(torch.softmax(qs @ ks.T / d**0.5, dim=-1) @ vs)
    return torch.cat(out, -1)


def test_rowwise_attention_equals_naive_row_loop():
    torch.manual_seed(0)
    unet = tiny_unet()
    attn = unet.multiview_blocks[0].attn_mv
    views, side, groups = attn.mv_num_views, 4, 2
    x = torch.randn(groups * views, side * side, attn.query_dim)
    got = RowwiseMVAttnProcessor()(attn, x)
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    expected = torch.zeros_like(got)
    for g in range(groups):
        for r in range(side):
            row = slice(r * side, (r + 1) * side)
            images = [g * views + vi for vi in range(views)]
            q_r, k_r, v_r = (torch.cat([t[i, row] for i in images]) for t in (q, k, v))  # (views x row) tokens
            out = attn.to_out[0](_attention(q_r, k_r, v_r, attn.heads))
            for j, i in enumerate(images):
                expected[i, row] = out[j * side:(j + 1) * side]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_joint_cross_domain_attention_and_face_fusion_region():
    torch.manual_seed(1)
    unet = tiny_unet()
    attn = unet.multiview_blocks[0].attn1
    views, side, groups = attn.mv_num_views, 6, 2
    n = 2 * groups * views
    x = torch.randn(n, side * side, attn.query_dim)
    got = JointCrossDomainAttnProcessor()(attn, x)
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    half = n // 2
    plain = torch.zeros_like(got)
    for i in range(half):  # normal image i and colour image i attend jointly over 2*HW tokens
        q_i, k_i, v_i = (torch.cat([t[i], t[half + i]]) for t in (q, k, v))
        out = attn.to_out[0](_attention(q_i, k_i, v_i, attn.heads))
        plain[i], plain[half + i] = out[: side * side], out[side * side:]
    # face fusion: only the front view's face box changes, to the mean of itself and the resized face output
    start, end = side // 3, side - side // 3
    changed = (got - plain).abs().amax(-1).view(2 * groups, views, side, side) > 1e-6
    expected_region = torch.zeros_like(changed)
    expected_region[:, attn.mv_front_view_index, :start, start:end] = True
    assert torch.equal(changed, expected_region)
    expected = fuse_face_into_front(plain[:half], views, attn.mv_face_view_index)
    torch.testing.assert_close(got[:half], expected, atol=1e-5, rtol=1e-5)
    face = plain[:half].view(groups, views, side, side, -1)[:, attn.mv_face_view_index].permute(0, 3, 1, 2)
    small = F.interpolate(face, size=(start, end - start), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    front = plain[:half].view(groups, views, side, side, -1)[:, 0, :start, start:end]
    torch.testing.assert_close(got[:half].view(groups, views, side, side, -1)[:, 0, :start, start:end],
                               0.5 * front + 0.5 * small, atol=1e-5, rtol=1e-5)


def test_views_interact_only_through_multiview_attention():
    torch.manual_seed(2)
    unet = tiny_unet().eval()
    v = unet.config.num_views
    n = 2 * v
    sample = torch.randn(n, 8, 16, 16)
    kwargs = dict(encoder_hidden_states=torch.randn(n, 8, 32), class_labels=torch.randn(n, 32))
    base = unet(sample, 10, **kwargs).sample
    bumped = sample.clone()
    bumped[1] += 1.0  # change the normal input of body view 1 only
    diff = (unet(bumped, 10, **kwargs).sample - base).abs().flatten(1).amax(1)
    face = unet.config.face_view_index
    body = [i for i in range(n) if i % v != face]
    assert (diff[body] > 1e-4).all()  # every body view of both domains sees it (row-wise + cross-domain)
    assert (diff[[face, v + face]] == 0).all()  # the face view takes no part in row-wise attention
    # without the MV branch and with face fusion off, another view would not see it except via cross-domain
    for block in unet.multiview_blocks:
        torch.nn.init.zeros_(block.attn_mv.to_out[0].weight)
        torch.nn.init.zeros_(block.attn_mv.to_out[0].bias)
        block.attn1.mv_face_view_index = None
    base = unet(sample, 10, **kwargs).sample
    diff = (unet(bumped, 10, **kwargs).sample - base).abs().flatten(1).amax(1)
    changed = (diff > 1e-6).nonzero().flatten().tolist()
    assert changed == [1, v + 1]  # the view itself and its colour twin


def test_fresh_multiview_branch_is_identity_and_processors_cannot_be_swapped():
    torch.manual_seed(3)
    unet = UNetMV2DConditionModel(**tiny_unet_config())
    block = unet.multiview_blocks[0]
    assert torch.count_nonzero(block.attn_mv.to_out[0].weight) == 0
    x = torch.randn(2 * unet.config.num_views, 16, block.dim)
    torch.testing.assert_close(block._rowwise_multiview(x, {}), x)
    unet.set_attn_processor(AttnProcessor2_0())
    unet.set_default_attn_processor()
    assert isinstance(block.attn1.processor, JointCrossDomainAttnProcessor)
    assert isinstance(block.attn_mv.processor, RowwiseMVAttnProcessor)
    assert isinstance(block.attn2.processor, AttnProcessor2_0)


def test_save_and_load_round_trip(tmp_path):
    unet = tiny_unet(seed=4, num_views=3, face_view_index=None)
    unet.save_pretrained(tmp_path / "unet")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = UNetMV2DConditionModel.from_pretrained(tmp_path / "unet")
    assert loaded.config.num_views == 3 and loaded.config.face_view_index is None
    for (ka, a), (kb, b) in zip(unet.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(a, b)
    x = torch.randn(6, 8, 16, 16)
    kw = dict(encoder_hidden_states=torch.randn(6, 8, 32), class_labels=torch.randn(6, 32))
    torch.testing.assert_close(unet(x, 5, **kw).sample, loaded(x, 5, **kw).sample)
