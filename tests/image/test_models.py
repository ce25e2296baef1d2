import re
from pathlib import PurePosixPath

# SwarmUI model subtypes and the folders under Models/ it scans for each (swarmui.md section 8).
FOLDERS = {
    "Stable-Diffusion": {"Stable-Diffusion", "diffusion_models", "unet", "tensorrt"},
    "LoRA": {"Lora"},
    "VAE": {"VAE"},
    "Clip": {"text_encoders", "clip"},
    "ClipVision": {"clip_vision"},
    "ControlNet": {"controlnet", "model_patches"},
    "Embedding": {"Embeddings"},
}
FIELDS = {
    "name": str, "subtype": str, "folder": str, "file": str, "url": str, "size_bytes": int,
    "size_exact": bool, "sha256": (str, type(None)), "token_env": (str, type(None)),
    "token_required": bool, "architecture": (str, type(None)), "role": str,
}
# Only on Wan 2.2 diffusion models and their LoRAs: which expert they belong to, and whether the 4-step distill is merged in.
OPTIONAL_FIELDS = {"stage": str, "speed_lora_baked_in": bool}
TOKENS = {"huggingface.co": "HUGGINGFACE_API_TOKEN", "civitai.com": "CIVITAI_API_TOKEN"}


def test_manifest_shape(models):
    assert models["schema"] == 1
    assert isinstance(models["models"], list) and models["models"]
    for model in models["models"]:
        extra = set(model) - set(FIELDS)
        assert set(FIELDS) <= set(model) and extra <= set(OPTIONAL_FIELDS), f"{model.get('name')}: fields {sorted(set(model) ^ set(FIELDS))}"
        for field, kind in FIELDS.items():
            assert isinstance(model[field], kind), f"{model['name']}.{field}"
        for field in extra:
            assert isinstance(model[field], OPTIONAL_FIELDS[field]), f"{model['name']}.{field}"
        if "stage" in model:
            assert model["stage"] in ("high", "low"), model["name"]
        if "speed_lora_baked_in" in model:
            assert model["subtype"] == "Stable-Diffusion" and "stage" in model, model["name"]


def test_names_and_files_are_unique(models):
    names = [m["name"] for m in models["models"]]
    files = [(m["folder"], m["file"]) for m in models["models"]]
    assert len(set(names)) == len(names)
    assert len(set(files)) == len(files)


def test_destinations_are_valid_swarmui_folders(models):
    for model in models["models"]:
        assert model["folder"] in FOLDERS[model["subtype"]], f"{model['name']}: {model['folder']} is not a {model['subtype']} folder"
        path = PurePosixPath(model["file"])
        assert not path.is_absolute() and ".." not in path.parts, model["file"]
        assert path.suffix in (".safetensors", ".gguf", ".sft"), model["file"]
        if path.suffix == ".gguf":
            # GGUF under Stable-Diffusion/ fails in SwarmUI; it must be loaded as a bare diffusion model.
            assert model["folder"] in ("diffusion_models", "unet"), model["name"]
        # The name is what presets and SwarmUI use: the file path, optionally without .safetensors.
        assert model["name"] in (model["file"], model["file"].removesuffix(".safetensors")), model["name"]


def test_urls_sizes_digests_and_tokens(models):
    for model in models["models"]:
        assert model["url"].startswith("https://"), model["url"]
        assert model["size_bytes"] > 1_000_000, model["name"]
        if model["sha256"] is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", model["sha256"]), model["name"]
        host = model["url"].split("/")[2]
        assert model["token_env"] == TOKENS.get(host), f"{model['name']}: token_env for {host}"
        if host == "civitai.com":
            assert model["token_required"], "Civitai downloads need a token"
        if "/resolve/" in model["url"]:
            assert "?" not in model["url"], "a query string would hide the file extension"


def test_the_users_models_and_what_wan_needs_are_listed(models):
    by_name = {m["name"]: m for m in models["models"]}
    assert by_name["Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"]["folder"] == "diffusion_models"
    assert by_name["wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf"]["folder"] == "diffusion_models"
    assert by_name["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise"]["subtype"] == "LoRA"
    encoders = [m for m in models["models"] if m["subtype"] == "Clip"]
    assert [m["file"] for m in encoders] == ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"]
    vaes = [m for m in models["models"] if m["subtype"] == "VAE"]
    # SwarmUI looks for the Wan 2.1 VAE at exactly this path before downloading it itself.
    assert [(m["folder"], m["file"]) for m in vaes] == [("VAE", "Wan/wan_2.1_vae.safetensors")]


def preset_model_references(preset):
    values = preset.get("input", {})
    video = values.get("video", {})
    for key, value in (("model", values.get("model")), ("video.model", video.get("model")),
                       ("video.swap_model", video.get("swap_model"))):
        if value is not None:
            yield key, "Stable-Diffusion", value
    for lora in values.get("loras", []):
        yield "loras", "LoRA", lora["name"]


def test_presets_refer_only_to_listed_models(models, presets):
    listed = {(m["subtype"], m["name"]) for m in models["models"]}
    listed |= {(m["subtype"], m["file"]) for m in models["models"]}
    for preset_name, preset in presets["presets"].items():
        for field, subtype, value in preset_model_references(preset):
            assert (subtype, value) in listed, f"preset {preset_name}: {field} '{value}' is not in builder/models.json"


# LoRA section confinement of each image-to-video stage (swarmui.md section 7): the first model runs in `video`,
# the swap model in `videoswap`; `everywhere` reaches both.
STAGE_SECTIONS = {"video.model": ("video", "high"), "video.swap_model": ("videoswap", "low")}
# A text-to-video pair runs as base model and step-swap refiner (swarmui.md section 9), so its LoRAs go to `base`/`refiner`.
T2V_STAGE_SECTIONS = {"video.model": ("base", "high"), "video.swap_model": ("refiner", "low")}


def is_text_to_video(model):
    return "text2video" in (model.get("architecture") or "") and not model["subtype"] == "LoRA"


def test_each_video_stage_runs_its_expert_with_its_speed_lora(models, presets):
    by_name = {m["name"]: m for m in models["models"]} | {m["file"]: m for m in models["models"]}
    for preset_name, preset in presets["presets"].items():
        values = preset["input"]
        video = values.get("video")
        if video is None:
            continue
        loras = values.get("loras", [])
        first = by_name.get(video.get("model"), {})
        sections = T2V_STAGE_SECTIONS if first and is_text_to_video(first) else STAGE_SECTIONS
        for field, (section, expert) in sections.items():
            name = video.get(field.split(".")[1])
            assert name is not None, f"preset {preset_name}: a Wan 2.2 A14B pipeline needs {field} (its {expert}-noise expert)"
            model = by_name.get(name)
            assert model is not None, f"preset {preset_name}: {field} '{name}' is not in builder/models.json"
            assert model.get("stage") == expert, f"preset {preset_name}: {field} '{name}' is not a {expert}-noise expert"
            on_stage = [by_name.get(l["name"]) for l in loras if l.get("confinement", "everywhere") in (section, "everywhere")]
            speed = [l for l in on_stage if l is not None and "stage" in l]
            if model.get("speed_lora_baked_in"):
                assert not speed, f"preset {preset_name}: '{name}' has the speed LoRA merged in; a second one on {section} doubles it"
            else:
                assert speed, f"preset {preset_name}: the {section} stage ('{name}') has no speed LoRA for {video.get('steps')} steps"
                assert all(l["stage"] == expert for l in speed), f"preset {preset_name}: a LoRA of the wrong expert on the {section} stage"
            if values.get("model") is not None:
                assert values["model"] == video["model"], f"preset {preset_name}: model should be the first video model"


def test_the_users_three_models_are_each_in_a_preset(presets):
    named = {value for preset in presets["presets"].values() for _, _, value in preset_model_references(preset)}
    for required in ("Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf", "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf",
                     "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise"):
        assert required in named, required


def test_text_to_video_has_a_preset_of_text_to_video_models(models, presets):
    """The fal text-to-video route asks the workers for wan22-t2v-lightx2v: it must exist and run T2V experts, whose
    architecture SwarmUI cannot read from GGUF headers (the sidecar carries it)."""
    by_name = {m["name"]: m for m in models["models"]}
    preset = presets["presets"]["wan22-t2v-lightx2v"]["input"]
    assert "init_image" not in preset
    for key in ("model", "swap_model"):
        model = by_name[preset["video"][key]]
        assert model["architecture"] == "wan-2_1-text2video-14b", model["name"]
        assert "T2V" in model["name"] and model["url"].startswith("https://huggingface.co/QuantStack/Wan2.2-T2V-A14B-GGUF/")
    for lora in preset["loras"]:
        assert by_name[lora["name"]]["architecture"] == "wan-2_1-text2video-14b/lora"
        assert "_t2v_" in lora["name"]
