//! An SVG picture of a view, laid out by Loktar itself so that no Graphviz
//! (and no network) is needed: one column per level, dependencies on the
//! left, rows ordered to keep edges short.

use std::fmt::Write;

use super::dot::fill;
use super::{State, View};

const CHAR_WIDTH: f64 = 7.8;
const NODE_HEIGHT: f64 = 44.0;
const ROW_GAP: f64 = 16.0;
const COLUMN_GAP: f64 = 80.0;
const MARGIN: f64 = 24.0;
const LEGEND_HEIGHT: f64 = 28.0;

struct Placed {
    x: f64,
    y: f64,
    width: f64,
}

/// The view as a standalone SVG document.
pub fn render(view: &View<'_>) -> String {
    let columns = columns(view);
    let widths: Vec<f64> =
        columns.iter().map(|column| column.iter().map(|&n| label_width(view, n)).fold(120.0, f64::max)).collect();
    let mut placed: Vec<Option<Placed>> = (0..view.nodes.len()).map(|_| None).collect();
    let mut x = MARGIN;
    let mut tallest: f64 = 0.0;
    for (column, width) in columns.iter().zip(&widths) {
        for (row, &node) in column.iter().enumerate() {
            let y = MARGIN + LEGEND_HEIGHT + row as f64 * (NODE_HEIGHT + ROW_GAP);
            placed[node] = Some(Placed { x, y, width: *width });
        }
        tallest = tallest.max(column.len() as f64 * (NODE_HEIGHT + ROW_GAP));
        x += width + COLUMN_GAP;
    }
    let width = (x - COLUMN_GAP + MARGIN).max(360.0);
    let height = MARGIN * 2.0 + LEGEND_HEIGHT + tallest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">"
    );
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n");
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>");
    legend(&mut out, view);
    for &(from, to) in &view.edges {
        if let (Some(a), Some(b)) = (&placed[from], &placed[to]) {
            // From the dependent's left side to the dependency's right side.
            let (x1, y1) = (a.x, a.y + NODE_HEIGHT / 2.0);
            let (x2, y2) = (b.x + b.width, b.y + NODE_HEIGHT / 2.0);
            let bend = ((x1 - x2).abs() / 2.0).max(30.0);
            let _ = writeln!(
                out,
                "<path d=\"M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"><title>{} depends on {}</title></path>",
                x1 - bend,
                x2 + bend,
                escape(view.name(from)),
                escape(view.name(to))
            );
        }
    }
    for (i, node) in view.nodes.iter().enumerate() {
        let Some(p) = &placed[i] else { continue };
        let package = &view.workspace.packages[node.package];
        let _ = writeln!(
            out,
            "<g><title>{}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{NODE_HEIGHT}\" rx=\"8\" fill=\"{}\" stroke=\"#333\"/>",
            escape(crate::config::show_dir(&package.dir)),
            p.x,
            p.y,
            p.width,
            fill(node.state)
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            p.x + p.width / 2.0,
            p.y + 19.0,
            escape(&package.name)
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\" font-size=\"11\">{}</text></g>",
            p.x + p.width / 2.0,
            p.y + 35.0,
            escape(package.pkg_type.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Nodes grouped by level; within a column, ordered by the mean row of their
/// dependencies (one barycentre sweep), which removes most edge crossings.
fn columns(view: &View<'_>) -> Vec<Vec<usize>> {
    let depth = view.nodes.iter().map(|n| n.level + 1).max().unwrap_or(0);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, node) in view.nodes.iter().enumerate() {
        columns[node.level].push(i);
    }
    let mut row = vec![0.0; view.nodes.len()];
    for column in &mut columns {
        let key = |node: usize| {
            let deps = view.dependencies(node);
            if deps.is_empty() { f64::MAX } else { deps.iter().map(|&d| row[d]).sum::<f64>() / deps.len() as f64 }
        };
        let mut keyed: Vec<(f64, usize)> = column.iter().map(|&n| (key(n), n)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *column = keyed.into_iter().map(|(_, n)| n).collect();
        for (r, &node) in column.iter().enumerate() {
            row[node] = r as f64;
        }
    }
    columns
}

fn label_width(view: &View<'_>, node: usize) -> f64 {
    let package = &view.workspace.packages[view.nodes[node].package];
    let chars = package.name.chars().count().max(package.pkg_type.as_deref().map_or(0, str::len));
    chars as f64 * CHAR_WIDTH + 28.0
}

fn legend(out: &mut String, view: &View<'_>) {
    let mut x = MARGIN;
    let entries: &[(State, &str)] = if view.nodes.iter().any(|n| n.state != State::Unaffected) {
        &[(State::Changed, "changed"), (State::Dependent, "depends on a change")]
    } else {
        &[(State::Unaffected, "package")]
    };
    for (state, label) in entries {
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{MARGIN}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{}\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            fill(*state),
            x + 20.0,
            MARGIN + 12.0
        );
        x += 40.0 + label.len() as f64 * CHAR_WIDTH;
    }
    let _ =
        writeln!(out, "<text x=\"{x:.1}\" y=\"{:.1}\" fill=\"#555\">arrows read \"depends on\"</text>", MARGIN + 12.0);
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
