//! The closing table: each figure beside its baseline from the same run,
//! their ratio, and whether the project's target for it is met.

use std::fmt;

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    MegabytesPerSecond,
    Millis,
    Mebibytes,
    Count,
    Fraction,
}

/// A measured value with its unit.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    pub value: f64,
    pub unit: Unit,
}

impl Figure {
    pub fn new(value: f64, unit: Unit) -> Self {
        Figure { value, unit }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            Unit::MegabytesPerSecond => write!(f, "{:.1} MB/s", self.value),
            Unit::Millis => write!(f, "{:.3} ms", self.value),
            Unit::Mebibytes => write!(f, "{:.1} MiB", self.value),
            Unit::Count => write!(f, "{:.0}", self.value),
            Unit::Fraction => write!(f, "{:.3}", self.value),
        }
    }
}

/// The target a row is held to: on its ratio to the baseline, or on the
/// figure itself.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    RatioAtLeast(f64),
    RatioAtMost(f64),
    AtMost(Figure),
    Equal(Figure),
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::RatioAtLeast(x) => write!(f, ">= {x}x"),
            Goal::RatioAtMost(x) => write!(f, "<= {x}x"),
            Goal::AtMost(figure) => write!(f, "<= {figure}"),
            Goal::Equal(figure) => write!(f, "= {figure}"),
        }
    }
}

pub struct Row {
    figure: String,
    value: Option<Figure>,
    /// What the figure is compared with, and its value when it was taken.
    baseline: Option<(String, Option<Figure>)>,
    goal: Goal,
}

impl Row {
    /// A row for a figure; `None` when it could not be measured.
    pub fn new(figure: impl Into<String>, value: Option<Figure>, goal: Goal) -> Self {
        Row {
            figure: figure.into(),
            value,
            baseline: None,
            goal,
        }
    }

    /// Compares the figure with a baseline; `None` when the baseline could
    /// not be measured.
    pub fn against(mut self, name: impl Into<String>, baseline: Option<Figure>) -> Self {
        self.baseline = Some((name.into(), baseline));
        self
    }

    fn ratio(&self) -> Option<f64> {
        let (_, baseline) = self.baseline.as_ref()?;
        Some(self.value?.value / baseline.as_ref()?.value)
    }

    fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
            Goal::RatioAtMost(x) => self.ratio().map(|r| r <= x),
            Goal::AtMost(limit) => self.value.map(|v| v.value <= limit.value),
            Goal::Equal(target) => self.value.map(|v| v.value == target.value),
        }
    }

    fn cells(&self) -> [String; 6] {
        let value = self.value.map_or("n/a".into(), |v| v.to_string());
        let (baseline, ratio) = match &self.baseline {
            None => ("-".to_string(), "-".to_string()),
            Some((name, figure)) => (
                format!("{name} {}", figure.map_or("n/a".into(), |f| f.to_string())),
                self.ratio().map_or("n/a".into(), |r| format!("{r:.2}x")),
            ),
        };
        let verdict = match self.met() {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "n/a",
        };
        [
            self.figure.clone(),
            value,
            baseline,
            ratio,
            self.goal.to_string(),
            verdict.into(),
        ]
    }
}

pub fn print(rows: &[Row]) {
    let header = [
        "figure",
        "value",
        "baseline (same run)",
        "ratio",
        "target",
        "verdict",
    ]
    .map(String::from);
    let lines: Vec<[String; 6]> = std::iter::once(header)
        .chain(rows.iter().map(Row::cells))
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].len())
                .max()
                .unwrap_or(0)
        })
        .collect();

    for (index, line) in lines.iter().enumerate() {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
        if index == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("{}", rule.join("  "));
        }
    }
}

/// Starts a section of figures.
pub fn section(title: &str) {
    println!("\n{title}");
}

/// One figure of a section.
pub fn item(label: &str, value: impl fmt::Display) {
    println!("  {label:<34} {value}");
}
