/// The presets built into the worker, used when SWARM_PRESETS_FILE is unset. The same text as `builder/presets.json`
/// (the file the image installs); a test keeps the two equal.
let builtInPresetsJSON = #"""
{
  "presets": {
    "wan22-i2v-lightx2v": {
      "description": "Wan 2.2 image-to-video A14B, GGUF, 4 steps with the lightx2v high-noise LoRA on the first stage (832x480, 81 frames at 16 fps). Send init_image and prompt.",
      "input": {
        "model": "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf",
        "width": 832,
        "height": 480,
        "video": {
          "model": "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf",
          "swap_model": "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf",
          "swap_percent": 0.5,
          "frames": 81,
          "fps": 16,
          "steps": 4,
          "cfg": 1,
          "format": "h264-mp4",
          "resolution": "Image"
        },
        "loras": [
          {"name": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise", "weight": 1, "confinement": "video"}
        ]
      }
    }
  }
}
"""#
