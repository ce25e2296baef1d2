/// fal.ai's list prices for the Wan 2.2 apps our presets replace: the anchor for "what fal.ai would have charged"
/// (cost reports) and for what a job forwarded to fal.ai is counted against the spill-over budget.
///
/// Source: fal.ai's model pages for `fal-ai/wan/v2.2-a14b/image-to-video` and `.../text-to-video`, as recorded in
/// `../shared/contracts/falai.md`, read 2026-12-06. Video seconds are counted at 16 fps whatever the output's fps,
/// so an 81-frame clip is 5.0625 s: $0.41 at 720p.
public enum FalPriceList {
    public static let source = "fal.ai model pages for fal-ai/wan/v2.2-a14b (image-to-video, text-to-video), read 2026-12-06"
    /// fal.ai bills frames as if played at this rate.
    public static let billedFramesPerSecond = 16.0

    /// Dollars per video second by output resolution.
    public static let dollarsPerVideoSecond: [String: Double] = [
        "480p": 0.04,
        "580p": 0.06,
        "720p": 0.08,
    ]

    /// `/turbo` apps charge per video, whatever its length.
    public static let turboDollarsPerVideo: [String: Double] = [
        "480p": 0.05,
        "580p": 0.075,
        "720p": 0.10,
    ]

    public static func videoSeconds(frames: Int) -> Double {
        Double(frames) / billedFramesPerSecond
    }

    /// The list price of one video of `frames` frames at `resolution`; nil for a resolution fal.ai does not sell.
    public static func price(frames: Int, resolution: String, turbo: Bool = false) -> Double? {
        if turbo { return turboDollarsPerVideo[resolution] }
        return dollarsPerVideoSecond[resolution].map { $0 * videoSeconds(frames: frames) }
    }
}
