import Foundation

/// The Costs view's chart, drawn by the server as SVG: per day, a bar of what was spent beside a bar of what fal.ai's
/// list price would have charged. No script, no external font; colours come from the stylesheet's classes.
enum CostChart {
    static let width = 720.0
    static let height = 270.0
    static let left = 56.0
    static let bottom = 46.0
    static let top = 16.0

    /// A round ceiling for the axis: 1, 2 or 5 times a power of ten, at least `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, floor(log10(value)))
        for step in [1.0, 2, 5, 10] where step * power >= value - 1e-12 { return step * power }
        return 10 * power
    }

    static func svg(days: [DayCost]) -> HTML {
        let plotWidth = width - left - 8
        let plotHeight = height - top - bottom
        let maximum = niceCeiling(days.map { max($0.spendUSD, $0.falEquivalentUSD) }.max() ?? 0)
        let slot = plotWidth / Double(max(1, days.count))
        let bar = max(1, min(28, slot * 0.38))
        let y = { (value: Double) in top + plotHeight - plotHeight * max(0, value) / maximum }
        let number = { (value: Double) in String(format: "%.1f", value) }
        var parts: [HTML] = []
        for tick in 0...4 {
            let value = maximum * Double(tick) / 4
            let ty = number(y(value))
            parts.append(
                """
                <line class="grid" x1="\(number(left))" x2="\(number(width - 8))" y1="\(ty)" y2="\(ty)"></line>\
                <text class="axis" x="\(number(left - 6))" y="\(ty)" text-anchor="end" dominant-baseline="middle">\(WebFormat.dollarsShort(value))</text>
                """
            )
        }
        // Label at most about a dozen days, so that they never overlap at 390 px.
        let labelEvery = max(1, Int((Double(days.count) / 12).rounded(.up)))
        for (index, day) in days.enumerated() {
            let x0 = left + slot * Double(index) + slot / 2
            let spendTop = y(day.spendUSD)
            let falTop = y(day.falEquivalentUSD)
            parts.append(
                """
                <rect class="bar-spend" data-day="\(day.day)" data-spend="\(day.spendUSD)" x="\(number(x0 - bar))" y="\(number(spendTop))" \
                width="\(number(bar))" height="\(number(top + plotHeight - spendTop))"><title>\(day.day): spent \(WebFormat.dollars(day.spendUSD))</title></rect>\
                <rect class="bar-fal" data-day="\(day.day)" data-fal="\(day.falEquivalentUSD)" x="\(number(x0))" y="\(number(falTop))" \
                width="\(number(bar))" height="\(number(top + plotHeight - falTop))"><title>\(day.day): fal.ai \(WebFormat.dollars(day.falEquivalentUSD))</title></rect>
                """
            )
            if index % labelEvery == 0 {
                parts.append(
                    "<text class=\"axis\" x=\"\(number(x0))\" y=\"\(number(height - bottom + 16))\" text-anchor=\"middle\">\(String(day.day.suffix(5)))</text>"
                )
            }
        }
        let legendY = number(height - 6)
        return """
            <svg class="cost-chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">\
            <title id="chart-title">Spend and fal.ai equivalent per day, \(days.count) day(s)</title>\(parts)\
            <rect class="bar-spend" x="\(number(left))" y="\(number(height - 16))" width="10" height="10"></rect>\
            <text class="axis" x="\(number(left + 14))" y="\(legendY)">spend</text>\
            <rect class="bar-fal" x="\(number(left + 70))" y="\(number(height - 16))" width="10" height="10"></rect>\
            <text class="axis" x="\(number(left + 84))" y="\(legendY)">fal.ai equivalent</text></svg>
            """
    }
}
