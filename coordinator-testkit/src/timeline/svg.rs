//! Draws a [`Timeline`] as one self-contained SVG: no script, no external
//! font, style sheet or image, so the file opens anywhere and diffs as
//! text. Every element carries a `<title>` (a browser shows it as a
//! tooltip), and the output depends on the timeline only: the same run
//! draws the same bytes.

use std::fmt::Write as _;

use super::{MarkKind, Timeline};

const WIDTH: f64 = 1200.0;
/// The lane names' column: at least this wide, wider for long names (up
/// to half the picture).
const MIN_LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
/// Each line of the title (bold 15 px), and how many characters fit on one.
const TITLE_LINE_H: f64 = 19.0;
const TITLE_CHARS: usize = 130;
/// Rows of run-wide mark labels above the lanes.
const RUN_ROWS: usize = 3;
const ROW_H: f64 = 13.0;
const LANE_H: f64 = 32.0;
/// A lane: a row of mark labels at the top, then the term bars.
const BAR_TOP: f64 = 12.0;
const BAR_H: f64 = 16.0;
const LANE_GAP: f64 = 4.0;
/// A rough width of one character at the label size (11 px sans-serif);
/// only used to decide whether a label fits, never to place a glyph.
const CHAR_W: f64 = 6.2;
/// The legend wraps to a second row when it must (ten epochs, every kind
/// of down span).
const LEGEND_ROW_H: f64 = 18.0;
const LEGEND_ROWS: f64 = 2.0;

/// Violations: one red, nowhere else in the picture.
pub const VIOLATION_RED: &str = "#d62728";

/// The colours of terms, keyed by epoch (`epoch % len`), so an epoch has
/// the same colour in every picture and consecutive epochs differ. No red:
/// red is for violations.
pub const EPOCH_PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#a0cbe8",
    "#8cd17d", "#bab0ac",
];

/// The colour of a term of `epoch`.
pub fn epoch_colour(epoch: u64) -> &'static str {
    EPOCH_PALETTE[(epoch % EPOCH_PALETTE.len() as u64) as usize]
}

/// The colour of a mark of `kind`.
pub fn mark_colour(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Fault => "#e07b00",
        MarkKind::Nemesis => "#222222",
        MarkKind::Operator => "#1f5fd1",
    }
}

fn mark_name(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Fault => "fault",
        MarkKind::Nemesis => "nemesis",
        MarkKind::Operator => "operator",
    }
}

/// The fill of a down span, by its `why`: killed solid grey, paused
/// hatched, partitioned cross-hatched, anything else dotted.
fn down_fill(why: &str) -> &'static str {
    match why {
        "killed" => "url(#down-killed)",
        "paused" => "url(#down-paused)",
        "partitioned" => "url(#down-partitioned)",
        "stopped" => "url(#down-stopped)",
        _ => "url(#down-other)",
    }
}

const DEFS: &str = r##"<defs>
<pattern id="down-killed" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#9a9a9a"/><path d="M0,6 L6,0" stroke="#6b6b6b" stroke-width="1.5"/></pattern>
<pattern id="down-paused" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#eeeeee"/><path d="M0,6 L6,0" stroke="#888888" stroke-width="1.2"/></pattern>
<pattern id="down-partitioned" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#eeeeee"/><path d="M0,6 L6,0 M0,0 L6,6" stroke="#888888" stroke-width="1"/></pattern>
<pattern id="down-stopped" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#d8d8d8"/></pattern>
<pattern id="down-other" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#eeeeee"/><circle cx="3" cy="3" r="1" fill="#888888"/></pattern>
</defs>
"##;

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to write these, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The time axis: where the picture starts, how wide it is, and the tick
/// step with its unit.
struct Axis {
    left: f64,
    plot: f64,
    start: u64,
    span: u64,
    step: u64,
    unit: Unit,
}

#[derive(Clone, Copy)]
enum Unit {
    Ms,
    S,
    Min,
    H,
}

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
const MIN: u64 = 60 * S;
const H: u64 = 60 * MIN;

impl Axis {
    fn of(t: &Timeline) -> Self {
        let longest = t.lanes.iter().map(|l| l.worker.chars().count()).max();
        let left = (longest.unwrap_or(0) as f64 * CHAR_W + 20.0).clamp(MIN_LEFT, WIDTH / 2.0);
        let span = t.end_ns.saturating_sub(t.start_ns).max(1);
        // The smallest round step that gives at most 10 ticks.
        let steps = [
            (MS, Unit::Ms),
            (2 * MS, Unit::Ms),
            (5 * MS, Unit::Ms),
            (10 * MS, Unit::Ms),
            (20 * MS, Unit::Ms),
            (50 * MS, Unit::Ms),
            (100 * MS, Unit::Ms),
            (200 * MS, Unit::Ms),
            (500 * MS, Unit::Ms),
            (S, Unit::S),
            (2 * S, Unit::S),
            (5 * S, Unit::S),
            (10 * S, Unit::S),
            (15 * S, Unit::S),
            (30 * S, Unit::S),
            (MIN, Unit::Min),
            (2 * MIN, Unit::Min),
            (5 * MIN, Unit::Min),
            (10 * MIN, Unit::Min),
            (15 * MIN, Unit::Min),
            (30 * MIN, Unit::Min),
            (H, Unit::H),
            (2 * H, Unit::H),
            (6 * H, Unit::H),
            (12 * H, Unit::H),
            (24 * H, Unit::H),
        ];
        let (step, unit) = steps
            .iter()
            .copied()
            .find(|(step, _)| span / step <= 10)
            .unwrap_or((span.div_ceil(10).max(1), Unit::H));
        Axis {
            left,
            plot: WIDTH - left - RIGHT,
            start: t.start_ns,
            span,
            step,
            unit,
        }
    }

    /// The x of an instant, clamped to the plot.
    fn x(&self, ns: u64) -> f64 {
        let from_start = ns.saturating_sub(self.start).min(self.span);
        self.left + from_start as f64 / self.span as f64 * self.plot
    }

    /// A tick's label: the time since the start, in the axis's unit.
    fn label(&self, since_start: u64) -> String {
        match self.unit {
            Unit::Ms => format!("{} ms", since_start / MS),
            Unit::S => format!("{} s", since_start / S),
            Unit::Min => format!("{} min", since_start / MIN),
            Unit::H => format!("{} h", since_start / H),
        }
    }
}

/// A time for a tooltip: seconds since the picture's start, to the ms.
fn at(axis: &Axis, ns: u64) -> String {
    let since = ns.saturating_sub(axis.start);
    format!("{}.{:03} s", since / S, since % S / MS)
}

/// Splits `text` into lines of at most `width` characters, at spaces where
/// it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !line.is_empty() && !fits {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let rest: String = line.chars().skip(width).collect();
            lines.push(line.chars().take(width).collect());
            line = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Greedy rows for labels: a label goes in the first row whose last label
/// ends before it starts, or is left out (its tooltip stays), as is one
/// that would run off the picture.
struct Rows(Vec<f64>);

impl Rows {
    fn new(rows: usize) -> Self {
        Rows(vec![f64::MIN; rows])
    }
    fn place(&mut self, x: f64, chars: usize) -> Option<usize> {
        let end = x + chars as f64 * CHAR_W;
        if end > WIDTH {
            return None;
        }
        let row = self.0.iter().position(|last| *last + 4.0 < x)?;
        self.0[row] = end;
        Some(row)
    }
}

/// How many violations the list under the picture spells out.
const LISTED_VIOLATIONS: usize = 20;

/// Draws `timeline` as a self-contained SVG document: a time axis with
/// ticks in ms, s, min or h (by the span), one lane per worker with its
/// terms as bars coloured by epoch (the epoch written in the bar when it
/// fits) and its down spans hatched, marks as ticks coloured by kind (a
/// run-wide mark crosses every lane), violations in red across the lanes
/// they concern and numbered in a list below, a legend and the title.
pub fn render_svg(timeline: &Timeline) -> String {
    let axis = Axis::of(timeline);
    let title = wrap(&timeline.title, TITLE_CHARS);
    let title_h = 15.0 + title.len().max(1) as f64 * TITLE_LINE_H;
    let lanes_top = title_h + RUN_ROWS as f64 * ROW_H + 6.0;
    let lane_y = |i: usize| lanes_top + i as f64 * (LANE_H + LANE_GAP);
    let lanes_bottom = lane_y(timeline.lanes.len()).max(lanes_top + LANE_H);
    let axis_y = lanes_bottom + 4.0;
    let legend_y = axis_y + 30.0;
    let listed = timeline.violations.len().min(LISTED_VIOLATIONS);
    let extra = usize::from(timeline.violations.len() > LISTED_VIOLATIONS);
    let list_y = legend_y + LEGEND_ROWS * LEGEND_ROW_H + 22.0;
    let height = if timeline.violations.is_empty() {
        legend_y + LEGEND_ROWS * LEGEND_ROW_H + 8.0
    } else {
        list_y + (listed + extra) as f64 * 15.0 + 10.0
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, "<title>{}</title>", escape(&timeline.title));
    s.push_str(DEFS);
    let _ = writeln!(
        s,
        r##"<rect width="{WIDTH}" height="{height:.0}" fill="#ffffff"/>"##
    );
    for (i, line) in title.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}" font-size="15" font-weight="bold">{}</text>"#,
            22.0 + i as f64 * TITLE_LINE_H,
            escape(line)
        );
    }

    // Grid and axis.
    s.push_str("<g class=\"axis\">\n");
    let mut tick = 0u64;
    while tick <= axis.span {
        let x = axis.x(axis.start.saturating_add(tick));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/><line x1="{x:.1}" y1="{axis_y:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            lanes_top - 4.0,
            axis_y,
            axis_y + 5.0,
            axis_y + 17.0,
            escape(&axis.label(tick))
        );
        tick = match tick.checked_add(axis.step) {
            Some(t) => t,
            None => break,
        };
    }
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#444444"/>"##,
        axis.left,
        axis.left + axis.plot
    );
    s.push_str("</g>\n");

    // Lanes: background, down spans, terms.
    for (i, lane) in timeline.lanes.iter().enumerate() {
        let y = lane_y(i);
        let _ = writeln!(
            s,
            r##"<g class="lane"><rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{LANE_H}" fill="#f7f7f7"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text></g>"##,
            axis.left,
            axis.plot,
            axis.left - 8.0,
            y + LANE_H / 2.0 + 4.0,
            escape(&lane.worker)
        );
        for d in &lane.down {
            let (x1, x2) = (axis.x(d.start_ns), axis.x(d.end_ns));
            let _ = writeln!(
                s,
                r#"<rect class="down" x="{x1:.1}" y="{y:.1}" width="{:.1}" height="{LANE_H}" fill="{}"><title>{}: {} from {} to {}</title></rect>"#,
                (x2 - x1).max(1.0),
                down_fill(&d.why),
                escape(&lane.worker),
                escape(&d.why),
                at(&axis, d.start_ns),
                at(&axis, d.end_ns)
            );
        }
        for term in &lane.terms {
            let (x1, x2) = (axis.x(term.start_ns), axis.x(term.end_ns));
            let w = (x2 - x1).max(1.0);
            let _ = writeln!(
                s,
                r##"<rect class="term" x="{x1:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}" stroke="#333333" stroke-width="0.5"><title>{} leads, epoch {}, from {} to {}</title></rect>"##,
                y + BAR_TOP,
                BAR_H,
                epoch_colour(term.epoch),
                escape(&lane.worker),
                term.epoch,
                at(&axis, term.start_ns),
                at(&axis, term.end_ns)
            );
            let text = term.epoch.to_string();
            if w >= text.len() as f64 * CHAR_W + 4.0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{text}</text>"#,
                    x1 + w / 2.0,
                    y + BAR_TOP + BAR_H / 2.0 + 3.5,
                );
            }
        }
    }

    // Marks: a run-wide one crosses every lane, its label in the rows
    // above; a worker's crosses its lane, its label at the lane's top.
    let mut run_rows = Rows::new(RUN_ROWS);
    let mut lane_rows: Vec<Rows> = timeline.lanes.iter().map(|_| Rows::new(1)).collect();
    for mark in &timeline.marks {
        let x = axis.x(mark.at_ns);
        let colour = mark_colour(mark.kind);
        let lane = mark
            .worker
            .as_ref()
            .and_then(|w| timeline.lanes.iter().position(|l| &l.worker == w));
        let (y1, y2) = match lane {
            Some(i) => (lane_y(i), lane_y(i) + LANE_H),
            None => (lanes_top - 2.0, lanes_bottom - LANE_GAP),
        };
        let who = mark.worker.as_deref().unwrap_or("every worker");
        let _ = writeln!(
            s,
            r#"<g class="mark {kind}"><title>{kind} at {}, {}: {}</title><line x1="{x:.1}" y1="{y1:.1}" x2="{x:.1}" y2="{y2:.1}" stroke="{colour}" stroke-width="1.5"/><path d="M{:.1},{y1:.1} L{:.1},{y1:.1} L{x:.1},{:.1} Z" fill="{colour}"/></g>"#,
            at(&axis, mark.at_ns),
            escape(who),
            escape(&mark.label),
            x - 3.5,
            x + 3.5,
            y1 + 5.0,
            kind = mark_name(mark.kind),
        );
        let chars = mark.label.chars().count();
        let placed = match lane {
            Some(i) => lane_rows[i].place(x + 4.0, chars).map(|_| lane_y(i) + 9.0),
            None => run_rows
                .place(x + 4.0, chars)
                .map(|row| title_h + (row + 1) as f64 * ROW_H),
        };
        if let Some(ty) = placed {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{ty:.1}" fill="{colour}" font-size="9">{}</text>"#,
                x + 4.0,
                escape(&mark.label)
            );
        }
    }

    // Violations, last so nothing hides them.
    for (k, v) in timeline.violations.iter().enumerate() {
        let (x1, x2) = (axis.x(v.start_ns), axis.x(v.end_ns));
        let mut lanes: Vec<usize> = v
            .workers
            .iter()
            .filter_map(|w| timeline.lanes.iter().position(|l| &l.worker == w))
            .collect();
        lanes.sort_unstable();
        lanes.dedup();
        let bands: Vec<(f64, f64)> = if lanes.is_empty() {
            vec![(lanes_top, lanes_bottom - LANE_GAP)]
        } else {
            lanes
                .iter()
                .map(|&i| (lane_y(i), lane_y(i) + LANE_H))
                .collect()
        };
        let _ = write!(
            s,
            r#"<g class="violation"><title>violation {} at {}: {}</title>"#,
            k + 1,
            at(&axis, v.start_ns),
            escape(&v.what)
        );
        let number_y = bands.first().map_or(lanes_top, |b| b.0) + 11.0;
        for (y1, y2) in bands {
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="{VIOLATION_RED}" fill-opacity="0.35" stroke="{VIOLATION_RED}" stroke-width="2"/>"#,
                x1 - 1.0,
                (x2 - x1).max(0.0) + 2.0,
                y2 - y1
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{number_y:.1}" fill="{VIOLATION_RED}" font-weight="bold">{}</text></g>"#,
            x2 + 3.0,
            k + 1,
        );
    }

    legend(&mut s, timeline, legend_y);

    if !timeline.violations.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}" fill="{VIOLATION_RED}" font-weight="bold">{} violation{}</text>"#,
            list_y - 6.0,
            timeline.violations.len(),
            if timeline.violations.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        for (k, v) in timeline
            .violations
            .iter()
            .take(LISTED_VIOLATIONS)
            .enumerate()
        {
            let _ = writeln!(
                s,
                r#"<text x="20" y="{:.1}" fill="{VIOLATION_RED}">{}. {}: {}</text>"#,
                list_y + 10.0 + k as f64 * 15.0,
                k + 1,
                at(&axis, v.start_ns),
                escape(&v.what)
            );
        }
        if extra > 0 {
            let _ = writeln!(
                s,
                r#"<text x="20" y="{:.1}" fill="{VIOLATION_RED}">… and {} more</text>"#,
                list_y + 10.0 + listed as f64 * 15.0,
                timeline.violations.len() - listed
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The legend: a few epoch swatches, the down spans, the mark kinds and
/// the violation colour, left to right.
fn legend(s: &mut String, timeline: &Timeline, y: f64) {
    let mut pos = (10.0, y);
    let mut epochs: Vec<u64> = timeline
        .lanes
        .iter()
        .flat_map(|l| l.terms.iter().map(|t| t.epoch))
        .collect();
    epochs.sort_unstable();
    epochs.dedup();
    s.push_str(r#"<g class="legend">"#);
    let shown: Vec<u64> = epochs.iter().copied().take(EPOCH_PALETTE.len()).collect();
    if shown.is_empty() {
        legend_item(
            s,
            &mut pos,
            Swatch::Box(epoch_colour(1)),
            "leader term (colour: epoch)",
        );
    }
    for (i, epoch) in shown.iter().enumerate() {
        let label = if i == 0 {
            format!("term, epoch {epoch}")
        } else {
            epoch.to_string()
        };
        legend_item(s, &mut pos, Swatch::Box(epoch_colour(*epoch)), &label);
    }
    if epochs.len() > shown.len() {
        legend_item(s, &mut pos, Swatch::None, "… (colour: epoch mod 10)");
    }
    let mut downs: Vec<&str> = timeline
        .lanes
        .iter()
        .flat_map(|l| l.down.iter().map(|d| d.why.as_str()))
        .collect();
    downs.sort_unstable();
    downs.dedup();
    for why in downs {
        legend_item(s, &mut pos, Swatch::Box(down_fill(why)), why);
    }
    for kind in [MarkKind::Fault, MarkKind::Nemesis, MarkKind::Operator] {
        legend_item(
            s,
            &mut pos,
            Swatch::Tick(mark_colour(kind)),
            mark_name(kind),
        );
    }
    legend_item(s, &mut pos, Swatch::Box(VIOLATION_RED), "violation");
    s.push_str("</g>\n");
}

enum Swatch {
    None,
    Box(&'static str),
    Tick(&'static str),
}

/// One legend entry at `pos` (moved past it, to the next row when the
/// entry would not fit).
fn legend_item(s: &mut String, pos: &mut (f64, f64), swatch: Swatch, label: &str) {
    let width = 18.0 + label.chars().count() as f64 * CHAR_W + 14.0;
    if pos.0 + width > WIDTH - RIGHT {
        *pos = (10.0, pos.1 + LEGEND_ROW_H);
    }
    let (x0, y) = *pos;
    match swatch {
        Swatch::None => {}
        Swatch::Box(fill) => {
            let _ = write!(
                s,
                r##"<rect x="{x0:.1}" y="{:.1}" width="14" height="12" fill="{fill}" stroke="#333333" stroke-width="0.5"/>"##,
                y + 0.5
            );
        }
        Swatch::Tick(colour) => {
            let _ = write!(
                s,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"#,
                x0 + 7.0,
                x0 + 7.0,
                y + 13.0
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
        x0 + 18.0,
        y + 10.0,
        escape(label)
    );
    pos.0 = x0 + width;
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn a_long_title_wraps_at_spaces_and_keeps_every_character() {
        let text = "coordinator-sim --seed 1 --faults crashes,pauses,leader_partitions";
        let lines = wrap(text, 40);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap("short", 30), ["short"]);
        assert_eq!(wrap("", 30), [""]);
        let long = "x".repeat(70);
        assert_eq!(wrap(&long, 30).concat(), long);
    }
}
