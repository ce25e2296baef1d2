/// The presets built into the worker, used when SWARM_PRESETS_FILE is unset. The same text as `builder/presets.json`
/// (the file the image installs); a test keeps the two equal.
let builtInPresetsJSON = #"""
    {
      "presets": {
        "wan22-i2v-lightx2v": {
          "description": "Wan 2.2 image-to-video A14B (QuantStack Q4_K_M GGUF), 4 steps: the high-noise expert with the lightx2v high-noise LoRA for the first half, the low-noise expert with the lightx2v low-noise LoRA for the second; CFG 1, shift 5, 832x480, 81 frames at 16 fps. Send init_image and prompt.",
          "input": {
            "model": "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf",
            "width": 832,
            "height": 480,
            "video": {
              "model": "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf",
              "swap_model": "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf",
              "swap_percent": 0.5,
              "frames": 81,
              "fps": 16,
              "steps": 4,
              "cfg": 1,
              "format": "h264-mp4",
              "resolution": "Image"
            },
            "loras": [
              {"name": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise", "weight": 1, "confinement": "video"},
              {"name": "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise", "weight": 1, "confinement": "videoswap"}
            ],
            "params": {"sigmashift": 5}
          }
        },
        "wan22-i2v-enhanced-fastmove": {
          "description": "Wan 2.2 Enhanced NSFW camera-prompt fine-tune (Civitai 2053259, FAST MOVE V2 Q8 GGUF), 4 steps: its high-noise model for the first half, its low-noise model for the second, the speed LoRA baked into both (no LoRA); CFG 1, 832x480, 81 frames at 16 fps. Send init_image and prompt.",
          "input": {
            "model": "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf",
            "width": 832,
            "height": 480,
            "video": {
              "model": "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf",
              "swap_model": "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8L.gguf",
              "swap_percent": 0.5,
              "frames": 81,
              "fps": 16,
              "steps": 4,
              "cfg": 1,
              "format": "h264-mp4",
              "resolution": "Image"
            }
          }
        },
        "wan22-t2v-lightx2v": {
          "description": "Wan 2.2 text-to-video A14B (QuantStack Q4_K_M GGUF), 4 steps: the high-noise expert as the base model with the lightx2v T2V high-noise LoRA for the first half, the low-noise expert as a step-swap refiner with the lightx2v T2V low-noise LoRA for the second; CFG 1, shift 5, 832x480, 81 frames at 16 fps. Send prompt only (no init_image).",
          "input": {
            "model": "Wan2.2-T2V-A14B-HighNoise-Q4_K_M.gguf",
            "width": 832,
            "height": 480,
            "video": {
              "model": "Wan2.2-T2V-A14B-HighNoise-Q4_K_M.gguf",
              "swap_model": "Wan2.2-T2V-A14B-LowNoise-Q4_K_M.gguf",
              "swap_percent": 0.5,
              "frames": 81,
              "fps": 16,
              "steps": 4,
              "cfg": 1,
              "format": "h264-mp4"
            },
            "loras": [
              {"name": "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise", "weight": 1, "confinement": "base"},
              {"name": "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise", "weight": 1, "confinement": "refiner"}
            ],
            "params": {"sigmashift": 5}
          }
        }
      }
    }
    """#
