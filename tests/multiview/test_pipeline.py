"""The multi-view pipeline with tiny random components on CPU: shapes, seeds, CFG layout, post-processing, saving
and loading (ours and PSHuman's folder layout), and error reporting for missing or corrupt files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from human3d.errors import EXIT_MISSING, MissingWeightsError
from human3d.multiview.loading import load_pipeline
from human3d.multiview.pipeline import PSHumanMVPipeline
from human3d.multiview.unet_mv import UNetMV2DConditionModel
from tests.multiview.tiny import EMBED, FLIPPED, NUM_VIEWS, RES, tiny_inputs, tiny_pipeline, tiny_unet

STEPS = 2


@pytest.fixture(scope="module")
def pipe() -> PSHumanMVPipeline:
    return tiny_pipeline()


@pytest.fixture(scope="module")
def inputs():
    return tiny_inputs()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("pipe") / "pshuman"
    pipe.save_pretrained(folder)
    return folder


def test_output_shapes_range_and_front_colour(pipe, inputs):
    image, face = inputs
    out = pipe(image, face, num_inference_steps=STEPS, seed=0)
    assert out.normals.shape == out.colors.shape == (NUM_VIEWS, RES, RES, 3)
    assert out.normals.dtype == np.float32 and 0.0 <= out.normals.min() and out.normals.max() <= 1.0
    np.testing.assert_array_equal(out.colors[0], image / np.float32(255.0))
    assert out.view_names == ["front", "right", "back", "face"]


def test_same_seed_same_views_other_seed_other_views(pipe, inputs):
    a = pipe(*inputs, num_inference_steps=STEPS, seed=3)
    b = pipe(*inputs, num_inference_steps=STEPS, seed=3)
    c = pipe(*inputs, num_inference_steps=STEPS, seed=4)
    np.testing.assert_array_equal(a.normals, b.normals)
    np.testing.assert_array_equal(a.colors, b.colors)
    assert np.abs(a.normals - c.normals).max() > 1e-3


def test_cfg_batch_layout(pipe, inputs, monkeypatch):
    seen = {}
    original = pipe.unet.forward

    def spy(sample, t, encoder_hidden_states=None, class_labels=None, **kw):
        seen.setdefault("calls", []).append((sample.clone(), encoder_hidden_states.clone(), class_labels.clone()))
        return original(sample, t, encoder_hidden_states=encoder_hidden_states, class_labels=class_labels, **kw)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    pipe(*inputs, num_inference_steps=STEPS, seed=0, guidance_scale=3.0)
    sample, prompts, labels = seen["calls"][0]
    v = NUM_VIEWS
    assert sample.shape[0] == 4 * v  # [normal-uncond, normal-cond, colour-uncond, colour-cond]
    blocks = lambda t: t.view(4, v, *t.shape[1:])  # noqa: E731
    s, p, c = blocks(sample), blocks(prompts), blocks(labels)
    normal_prompt, color_prompt = pipe.view_prompt_embeddings()
    for i, expected in enumerate([normal_prompt, normal_prompt, color_prompt, color_prompt]):
        torch.testing.assert_close(p[i], expected)  # prompts are kept in the unconditional branch
    assert torch.count_nonzero(c[0]) == 0 and torch.count_nonzero(c[2]) == 0  # uncond: zero class labels
    assert torch.count_nonzero(s[0, :, 4:]) == 0 and torch.count_nonzero(s[2, :, 4:]) == 0  # and zero image latents
    assert torch.count_nonzero(c[1]) > 0 and torch.count_nonzero(s[1, :, 4:]) > 0
    torch.testing.assert_close(s[0, :, :4], s[1, :, :4])  # the same noisy latents in both branches
    torch.testing.assert_close(s[2, :, :4], s[3, :, :4])
    torch.testing.assert_close(s[1, :, 4:], s[3, :, 4:])  # same condition images for both domains
    torch.testing.assert_close(c[1][:, EMBED:], c[3][:, EMBED:])  # same noise-level embedding (noise_level 0)
    torch.testing.assert_close(c[1][:, :EMBED], c[3][:, :EMBED], atol=0.1, rtol=0.1)  # own small noise per row
    assert not torch.equal(s[0, :, :4], s[2, :, :4])  # normals and colours have their own latents


def test_guided_prediction_equals_separate_branches(pipe, inputs):
    # Joint attention pairs the first and second halves of the batch, so the 4V CFG batch must pair
    # normal-uncond with colour-uncond and normal-cond with colour-cond: then each branch equals its own 2V run.
    from human3d.multiview.pipeline import Conditioning, _to_pil

    body, face = (_to_pil(x, RES) for x in inputs)
    views = [face if i == pipe.face_view_index else body for i in range(NUM_VIEWS)]
    g = torch.Generator().manual_seed(0)
    cond = pipe.encode_conditions(views, guidance=True, generator=g)
    latents = torch.randn(2 * NUM_VIEWS, 4, RES // 4, RES // 4, generator=g)
    t = torch.tensor(500)
    guided = pipe.predict_noise(latents, t, cond, guidance_scale=3.0)

    def branch(k: int) -> torch.Tensor:
        idx = [k, k + 2]
        pick = lambda x: torch.cat([x.view(4, NUM_VIEWS, *x.shape[1:])[i] for i in idx])  # noqa: E731
        single = Conditioning(pick(cond.prompt_embeds), pick(cond.class_labels), pick(cond.image_latents), False)
        return pipe.predict_noise(latents, t, single, 1.0)

    uncond, text = branch(0), branch(1)
    torch.testing.assert_close(guided, uncond + 3.0 * (text - uncond), atol=1e-4, rtol=1e-4)


def test_postprocess_unflips_and_pastes_face(pipe):
    v, r = NUM_VIEWS, RES
    normals = torch.rand(v, 3, r, r)
    colors = torch.rand(v, 3, r, r)
    from PIL import Image

    image = Image.fromarray(np.full((r, r, 3), 7, np.uint8))
    n, c = pipe.postprocess(normals, colors, image)
    f = FLIPPED[0]
    np.testing.assert_allclose(n[f], normals[f].flip(-1).permute(1, 2, 0).numpy())
    np.testing.assert_allclose(c[f], colors[f].flip(-1).permute(1, 2, 0).numpy())
    np.testing.assert_allclose(c[1], colors[1].permute(1, 2, 0).numpy())  # not flipped
    from human3d.cameras import face_box

    x0, y0, x1, y1 = face_box(r)  # the canvas region the face crop was cut from
    box = (slice(y0, y1), slice(x0, x1))
    face = torch.nn.functional.interpolate(normals[v - 1][None], size=(y1 - y0, x1 - x0), mode="bilinear")[0]
    np.testing.assert_allclose(n[0][box], face.permute(1, 2, 0).numpy(), atol=1e-6)
    outside = np.ones((r, r), bool)
    outside[box] = False
    np.testing.assert_allclose(n[0][outside], normals[0].permute(1, 2, 0).numpy()[outside])
    np.testing.assert_allclose(c[0], 7 / 255.0, atol=1e-7)


def test_save_pretrained_from_pretrained_round_trip(pipe, inputs, saved):
    assert (saved / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (saved / "prompt_embeddings" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = PSHumanMVPipeline.from_pretrained(saved)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.unet, UNetMV2DConditionModel)
    assert loaded.config.flipped_views == list(FLIPPED)
    a = pipe(*inputs, num_inference_steps=STEPS, seed=1)
    b = loaded(*inputs, num_inference_steps=STEPS, seed=1)
    np.testing.assert_allclose(a.normals, b.normals, atol=1e-5)
    np.testing.assert_allclose(a.colors, b.colors, atol=1e-5)


def _pshuman_layout(saved, target):
    """Rewrite a saved folder the way PSHuman's HF repo is laid out: foreign classes in model_index.json, PSHuman's
    UNet config, prompt embeddings as its normal_embeds.pt/clr_embeds.pt."""
    shutil.copytree(saved, target)
    index = json.loads((target / "model_index.json").read_text())
    index = {
        "_class_name": "StableUnCLIPImg2ImgPipeline", "_diffusers_version": "0.27.2",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "image_normalizer": ["stable_diffusion", "StableUnCLIPImageNormalizer"],
        "image_noising_scheduler": ["diffusers", "DDPMScheduler"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["mvdiffusion.models_unclip.unet_mv2d_condition", "UNetMV2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": [None, None], "tokenizer": [None, None],
        "view_names": index["view_names"], "flipped_views": index["flipped_views"],
    }
    (target / "model_index.json").write_text(json.dumps(index))
    config = json.loads((target / "unet" / "config.json").read_text())
    for key in ("face_view_index", "front_view_index", "_use_default_values"):
        config.pop(key, None)
    config.update(
        _class_name="UNetMV2DConditionModel",
        down_block_types=["CrossAttnDownBlockMV2D"] * 2, up_block_types=["CrossAttnUpBlockMV2D"] * 2,
        mid_block_type="UNetMidBlockMV2DCrossAttn", cd_attention_last=False, cd_attention_mid=False,
        multiview_attention=True, sparse_mv_attention=True, selfattn_block="self_rowwise", mvcd_attention=True,
        regress_elevation=False, regress_focal_length=False, num_regress_blocks=3, use_dino=False,
        addition_downsample=False, projection_camera_embeddings_input_dim=2,
    )
    (target / "unet" / "config.json").write_text(json.dumps(config))
    embeds = load_file(target / "prompt_embeddings" / "diffusion_pytorch_model.safetensors")
    torch.save(embeds["normal"].half(), target / "normal_embeds.pt")
    torch.save(embeds["color"].half(), target / "clr_embeds.pt")
    shutil.rmtree(target / "prompt_embeddings")
    return target


def test_loads_pshuman_layout_without_importing_its_module(pipe, inputs, saved, tmp_path):
    folder = _pshuman_layout(saved, tmp_path / "PSHuman_Unclip")
    with pytest.raises(MissingWeightsError, match="allow-pickle"):
        load_pipeline(folder)  # its prompt embeddings are pickles
    loaded = load_pipeline(folder, allow_pickle=True)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.unet) is UNetMV2DConditionModel and loaded.unet.config.face_view_index == NUM_VIEWS - 1
    a = pipe(*inputs, num_inference_steps=STEPS, seed=2)
    b = loaded(*inputs, num_inference_steps=STEPS, seed=2)
    # same weights; the prompt embeddings went through float16 like PSHuman's files
    np.testing.assert_allclose(a.normals, b.normals, atol=2e-2)


def test_unet_path_swaps_in_a_tuned_unet(saved, tmp_path):
    tuned = tiny_unet(seed=9)
    tuned.save_pretrained(tmp_path / "drpose_unet")
    loaded = load_pipeline(saved, unet_path=tmp_path / "drpose_unet")
    for (k, a), b in zip(tuned.state_dict().items(), loaded.unet.state_dict().values()):
        assert torch.equal(a, b), k


def test_missing_corrupt_and_pickle_files_are_named(saved, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(saved, folder)
    vae_weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    vae_weights.unlink()
    with pytest.raises(MissingWeightsError) as err:
        load_pipeline(folder)
    assert str(vae_weights) in str(err.value) and err.value.exit_code == EXIT_MISSING

    shutil.copy(saved / "vae" / "diffusion_pytorch_model.safetensors", vae_weights)
    unet_weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet_weights.write_bytes(unet_weights.read_bytes()[:-100])  # truncated download
    with pytest.raises(MissingWeightsError, match="truncated") as err:
        load_pipeline(folder)
    assert str(unet_weights) in str(err.value)

    state = load_file(saved / "unet" / "diffusion_pytorch_model.safetensors")
    unet_weights.unlink()
    torch.save(state, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(MissingWeightsError, match="pickle"):
        load_pipeline(folder)
    assert isinstance(load_pipeline(folder, allow_pickle=True).unet, UNetMV2DConditionModel)

    save_file(state, unet_weights)
    (folder / "model_index.json").write_text("{not json")
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        load_pipeline(folder)


def _tiny_text_encoder(folder):
    """A tiny CLIP text encoder + a character-level CLIP tokenizer written to ``folder``."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789,._"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=37,
                                           num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=77,
                                           bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1)).eval()
    return encoder, tokenizer


def test_prompt_embeddings_from_text_encoder_and_tokenizer(saved, inputs, tmp_path):
    folder = tmp_path / "with_text_encoder"
    shutil.copytree(saved, folder)
    shutil.rmtree(folder / "prompt_embeddings")
    encoder, tokenizer = _tiny_text_encoder(tmp_path / "tok")
    encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    pipe = load_pipeline(folder)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.prompt_embeddings is None and pipe.text_encoder is not None
    normal, color = pipe.view_prompt_embeddings()
    assert normal.shape == color.shape == (NUM_VIEWS, 77, 32)
    rows = torch.cat([normal, color]).flatten(1)
    assert torch.cdist(rows, rows).add(torch.eye(2 * NUM_VIEWS)).min() > 0  # all 2V prompts differ
    ids = tokenizer(["a rendering image of 3D human, back view, color map."], padding="max_length",
                    max_length=77, truncation=True, return_tensors="pt").input_ids
    torch.testing.assert_close(color[2], encoder(ids)[0][0])
    out = pipe(*inputs, num_inference_steps=1, seed=0)
    assert out.normals.shape == (NUM_VIEWS, RES, RES, 3)
