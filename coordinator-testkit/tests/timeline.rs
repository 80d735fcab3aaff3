//! `timeline::render_svg`: the picture is well-formed XML whatever the
//! text in it, has one bar per term in its epoch's colour, draws every
//! violation in red over the lanes it concerns, picks readable ticks, and
//! draws the same bytes for the same timeline.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::svg::{parse, Element};
use coordinator_testkit::timeline::{
    epoch_colour, mark_colour, render_svg, Down, Lane, Mark, MarkKind, Term, Timeline,
    TimelineViolation, EPOCH_PALETTE, VIOLATION_RED,
};

const S: u64 = 1_000_000_000;

fn term(epoch: u64, from_s: u64, to_s: u64) -> Term {
    Term {
        epoch,
        start_ns: from_s * S,
        end_ns: to_s * S,
    }
}

fn sample() -> Timeline {
    Timeline {
        title: "seed 7: 3 workers".into(),
        start_ns: 0,
        end_ns: 300 * S,
        lanes: vec![
            Lane {
                worker: "w0".into(),
                terms: vec![term(1, 0, 40), term(3, 100, 300)],
                down: vec![Down {
                    why: "paused".into(),
                    start_ns: 30 * S,
                    end_ns: 70 * S,
                }],
            },
            Lane {
                worker: "w1".into(),
                terms: vec![term(2, 55, 95)],
                down: vec![Down {
                    why: "killed".into(),
                    start_ns: 95 * S,
                    end_ns: 125 * S,
                }],
            },
            Lane {
                worker: "w2".into(),
                terms: vec![],
                down: vec![Down {
                    why: "partitioned".into(),
                    start_ns: 200 * S,
                    end_ns: 230 * S,
                }],
            },
        ],
        marks: vec![
            Mark {
                at_ns: 30 * S,
                worker: Some("w0".into()),
                kind: MarkKind::Nemesis,
                label: "pause 40 s".into(),
            },
            Mark {
                at_ns: 150 * S,
                worker: None,
                kind: MarkKind::Operator,
                label: "delete_lease".into(),
            },
            Mark {
                at_ns: 200 * S,
                worker: Some("w2".into()),
                kind: MarkKind::Fault,
                label: "partition 30 s".into(),
            },
        ],
        violations: vec![TimelineViolation {
            start_ns: 100 * S,
            end_ns: 110 * S,
            workers: vec!["w0".into(), "w2".into()],
            what: "SplitBrain: w0 and w2 both lead".into(),
        }],
    }
}

/// The lane backgrounds' y, by worker.
fn lane_tops(svg: &Element) -> Vec<(String, String)> {
    svg.with_class("g", "lane")
        .into_iter()
        .map(|g| {
            let rect = g.children.iter().find(|c| c.name == "rect").unwrap();
            let label = g.children.iter().find(|c| c.name == "text").unwrap();
            (label.text.clone(), rect.attr("y").to_owned())
        })
        .collect()
}

#[test]
fn one_bar_per_term_in_its_epochs_colour() {
    let t = sample();
    let svg = parse(&render_svg(&t));
    let bars = svg.with_class("rect", "term");
    let terms: Vec<&Term> = t.lanes.iter().flat_map(|l| &l.terms).collect();
    assert_eq!(bars.len(), terms.len());
    for (bar, term) in bars.iter().zip(&terms) {
        assert_eq!(bar.attr("fill"), epoch_colour(term.epoch));
        let title = bar.title().unwrap();
        assert!(title.contains(&format!("epoch {}", term.epoch)), "{title}");
    }
    // The epoch is written in a bar wide enough for it.
    let texts: Vec<&str> = svg
        .descendants()
        .into_iter()
        .filter(|e| e.name == "text")
        .map(|e| e.text.as_str())
        .collect();
    for epoch in ["1", "2", "3"] {
        assert!(texts.contains(&epoch), "epoch {epoch} not written");
    }
    assert_eq!(svg.with_class("rect", "down").len(), 3);
}

#[test]
fn epoch_colours_are_stable_distinct_neighbours_and_never_red() {
    assert_eq!(
        epoch_colour(3),
        epoch_colour(3 + EPOCH_PALETTE.len() as u64)
    );
    for e in 0..30 {
        assert_ne!(epoch_colour(e), epoch_colour(e + 1));
        assert_ne!(epoch_colour(e), VIOLATION_RED);
    }
    let kinds = [MarkKind::Fault, MarkKind::Nemesis, MarkKind::Operator];
    for a in kinds {
        assert_ne!(mark_colour(a), VIOLATION_RED);
        for b in kinds {
            assert_eq!(a == b, mark_colour(a) == mark_colour(b));
        }
    }
}

#[test]
fn violations_are_red_over_the_lanes_they_concern() {
    let t = sample();
    let svg = parse(&render_svg(&t));
    let groups = svg.with_class("g", "violation");
    assert_eq!(groups.len(), 1);
    let rects: Vec<&Element> = groups[0]
        .children
        .iter()
        .filter(|c| c.name == "rect")
        .collect();
    assert_eq!(rects.len(), 2, "one band per lane concerned");
    let tops = lane_tops(&svg);
    let y_of = |w: &str| tops.iter().find(|(n, _)| n == w).unwrap().1.clone();
    let ys: Vec<&str> = rects.iter().map(|r| r.attr("y")).collect();
    assert_eq!(ys, vec![y_of("w0"), y_of("w2")]);
    for r in rects {
        assert_eq!(r.attr("fill"), VIOLATION_RED);
        assert_eq!(r.attr("stroke"), VIOLATION_RED);
    }
    assert!(groups[0].title().unwrap().contains("SplitBrain"));
    // Nothing but a violation is red.
    let red: Vec<&Element> = svg
        .descendants()
        .into_iter()
        .filter(|e| e.attr("fill") == VIOLATION_RED || e.attr("stroke") == VIOLATION_RED)
        .collect();
    assert!(red.iter().all(|e| e.name == "rect" || e.name == "text"));
    // The list under the picture spells it out.
    assert!(svg
        .descendants()
        .iter()
        .any(|e| e.name == "text" && e.text.contains("SplitBrain: w0 and w2 both lead")));
}

#[test]
fn a_violation_naming_no_lane_crosses_every_lane() {
    let mut t = sample();
    t.violations[0].workers.clear();
    let svg = parse(&render_svg(&t));
    let rects: Vec<&Element> = svg.with_class("g", "violation")[0]
        .children
        .iter()
        .filter(|c| c.name == "rect")
        .collect();
    assert_eq!(rects.len(), 1);
    let height: f64 = rects[0].attr("height").parse().unwrap();
    let lane: f64 = svg.with_class("g", "lane")[0].children[0]
        .attr("height")
        .parse()
        .unwrap();
    assert!(height > 2.5 * lane, "{height} does not cross 3 lanes");
}

#[test]
fn marks_are_coloured_by_kind_and_run_wide_ones_cross_every_lane() {
    let t = sample();
    let svg = parse(&render_svg(&t));
    let line = |class: &str| {
        let g = svg.with_class("g", class);
        assert_eq!(g.len(), 1, "{class}");
        let line = g[0].children.iter().find(|c| c.name == "line").unwrap();
        let y1: f64 = line.attr("y1").parse().unwrap();
        let y2: f64 = line.attr("y2").parse().unwrap();
        (line.attr("stroke").to_owned(), y2 - y1)
    };
    let (nemesis, lane_h) = line("mark nemesis");
    let (fault, _) = line("mark fault");
    let (operator, run_h) = line("mark operator");
    assert_eq!(nemesis, mark_colour(MarkKind::Nemesis));
    assert_eq!(fault, mark_colour(MarkKind::Fault));
    assert_eq!(operator, mark_colour(MarkKind::Operator));
    assert!(run_h > 2.5 * lane_h, "{run_h} vs {lane_h}");
}

#[test]
fn text_is_escaped_everywhere() {
    let nasty = r#"<script>alert("x")</script> & 'q' ]]> &amp;"#;
    let mut t = sample();
    t.title = nasty.into();
    t.lanes[1].worker = format!("w1 {nasty}");
    t.lanes[1].down[0].why = nasty.into();
    t.marks[0].label = nasty.into();
    t.marks[0].worker = Some(t.lanes[1].worker.clone());
    t.violations[0].what = nasty.into();
    t.violations[0].workers = vec![t.lanes[1].worker.clone()];
    let text = render_svg(&t);
    let svg = parse(&text);
    assert!(svg.descendants().iter().all(|e| e.name != "script"));
    assert_eq!(svg.title(), Some(nasty));
    let texts: Vec<&str> = svg
        .descendants()
        .into_iter()
        .map(|e| e.text.as_str())
        .collect();
    assert!(texts.contains(&format!("w1 {nasty}").as_str()), "lane name");
    assert!(texts.iter().any(|t| t.ends_with(&format!(": {nasty}"))));
    // The mark and the violation still find the renamed lane.
    assert_eq!(
        svg.with_class("g", "violation")[0]
            .children
            .iter()
            .filter(|c| c.name == "rect")
            .count(),
        1
    );
    // Control characters XML cannot carry are replaced, not passed on.
    t.title = "bell \u{7} here".into();
    assert_eq!(parse(&render_svg(&t)).title(), Some("bell \u{fffd} here"));
}

fn tick_labels(t: &Timeline) -> Vec<String> {
    parse(&render_svg(t))
        .with_class("g", "axis")
        .first()
        .unwrap()
        .children
        .iter()
        .filter(|c| c.name == "text")
        .map(|c| c.text.clone())
        .collect()
}

#[test]
fn ticks_are_in_a_unit_that_suits_the_span() {
    let mut t = sample();
    t.start_ns = 5 * S;
    t.end_ns = t.start_ns + 800_000_000;
    assert_eq!(
        tick_labels(&t),
        ["0 ms", "100 ms", "200 ms", "300 ms", "400 ms", "500 ms", "600 ms", "700 ms", "800 ms"]
    );
    t.end_ns = t.start_ns + 45 * S;
    assert_eq!(
        tick_labels(&t),
        ["0 s", "5 s", "10 s", "15 s", "20 s", "25 s", "30 s", "35 s", "40 s", "45 s"]
    );
    t.end_ns = t.start_ns + 30 * 60 * S;
    assert_eq!(
        tick_labels(&t),
        ["0 min", "5 min", "10 min", "15 min", "20 min", "25 min", "30 min"]
    );
    t.end_ns = t.start_ns + 20 * 3600 * S;
    assert_eq!(tick_labels(&t).len(), 11);
    assert_eq!(tick_labels(&t)[1], "2 h");
}

#[test]
fn the_same_timeline_draws_the_same_bytes() {
    let t = sample();
    let first = render_svg(&t);
    assert_eq!(first, render_svg(&t.clone()));
    // Through its JSON form too (what the checker and --timeline x.json write).
    let json = serde_json::to_string(&t).unwrap();
    let back: Timeline = serde_json::from_str(&json).unwrap();
    assert_eq!(render_svg(&back), first);
}

#[test]
fn an_empty_or_degenerate_timeline_still_draws() {
    for t in [
        Timeline::default(),
        Timeline {
            start_ns: 10,
            end_ns: 5,
            lanes: vec![Lane {
                worker: "w".into(),
                terms: vec![term(0, 0, u64::MAX / S)],
                down: vec![],
            }],
            ..Timeline::default()
        },
    ] {
        let svg = parse(&render_svg(&t));
        assert_eq!(svg.with_class("rect", "term").len(), t.lanes.len());
    }
}
