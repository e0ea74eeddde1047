//! Disclosure control of seed 002 over a whole release: primary suppression of the cells resting on too
//! few respondents, then secondary suppression until no suppressed cell can be worked out from anything
//! published, checked by an attacker who solves the release's linear system (this module's [`intervals`]).
//!
//! A release is a set of cells (inner cells and margins of every table) and linear equations between them
//! (each row and column sums to its margin; margins shared by tables are equal). A published cell is a
//! known number; a suppressed cell (`X`) is an unknown, at least 0. An `X` is safe when the least and the
//! greatest value it can take under every equation differ by at least 1 (so at least two whole numbers fit).

use microlp::{ComparisonOp, OptimizationDirection, Problem};

/// One cell of a release.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Cases counted (or SMS parts, for that table).
    pub value: i64,
    /// Distinct organisations the value rests on.
    pub respondents: usize,
    /// A margin (row or column total) rather than an inner cell.
    pub margin: bool,
}

/// Cells and the equations between them: each equation is `sum(coefficient × cell) = 0`.
#[derive(Debug, Clone, Default)]
pub struct Lattice {
    /// Every cell of the release.
    pub cells: Vec<Cell>,
    /// Every equation the release implies.
    pub equations: Vec<Vec<(usize, f64)>>,
}

/// The least width a suppressed cell's interval must have.
const SAFE_WIDTH: f64 = 1.0 - 1e-6;

/// Primary suppression: a cell resting on at least one but fewer than `min_respondents` organisations.
pub fn primary(lattice: &Lattice, min_respondents: usize) -> Vec<bool> {
    lattice
        .cells
        .iter()
        .map(|c| c.respondents > 0 && c.respondents < min_respondents)
        .collect()
}

/// The unsuppressed cell of `candidates` the seed would take next: the fewest respondents, then the
/// smallest value, an inner cell before a margin, then the first. Empty cells are no help (an unknown that
/// must be 0 stays 0) and are never taken.
fn next_fewest(
    lattice: &Lattice,
    x: &[bool],
    candidates: impl Iterator<Item = usize>,
) -> Option<usize> {
    candidates
        .filter(|&c| !x[c] && lattice.cells[c].value > 0)
        .min_by_key(|&c| {
            let cell = &lattice.cells[c];
            (cell.respondents, cell.value, cell.margin, c)
        })
}

/// Primary and secondary suppression; returns which cells are `X`.
pub fn suppress(lattice: &Lattice, min_respondents: usize) -> Vec<bool> {
    let mut x = primary(lattice, min_respondents);
    let mut involving: Vec<Vec<usize>> = vec![Vec::new(); lattice.cells.len()];
    for (e, eq) in lattice.equations.iter().enumerate() {
        for &(c, _) in eq {
            involving[c].push(e);
        }
    }
    loop {
        // An equation with a single unknown gives it away: suppress its next fewest.
        loop {
            let mut changed = false;
            for eq in &lattice.equations {
                let unknown = eq.iter().filter(|(c, _)| x[*c]).count();
                if unknown == 1
                    && let Some(c) = next_fewest(lattice, &x, eq.iter().map(|(c, _)| *c))
                {
                    x[c] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // The attacker's check; a cell still worked out gets one more complement in one of its equations.
        let Some(exposed) = intervals(lattice, &x)
            .into_iter()
            .find(|iv| iv.max - iv.min < SAFE_WIDTH)
        else {
            return x;
        };
        let near = involving[exposed.cell]
            .iter()
            .flat_map(|&e| lattice.equations[e].iter().map(|(c, _)| *c));
        match next_fewest(lattice, &x, near) {
            Some(c) => x[c] = true,
            // Nothing left beside it: every cell of its equations goes (in practice unreachable).
            None => {
                for &e in &involving[exposed.cell] {
                    for &(c, _) in &lattice.equations[e] {
                        x[c] = true;
                    }
                }
                if intervals(lattice, &x)
                    .iter()
                    .all(|iv| iv.max - iv.min >= SAFE_WIDTH)
                {
                    return x;
                }
                return vec![true; lattice.cells.len()];
            }
        }
    }
}

/// What the attacker can say of one suppressed cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The cell.
    pub cell: usize,
    /// Its least possible value.
    pub min: f64,
    /// Its greatest possible value (`f64::INFINITY` when unbounded).
    pub max: f64,
}

/// For every suppressed cell, the least and greatest value consistent with everything published: two
/// linear programmes over the unknowns (each at least 0) under every equation of the release.
pub fn intervals(lattice: &Lattice, x: &[bool]) -> Vec<Interval> {
    let unknowns: Vec<usize> = (0..x.len()).filter(|&c| x[c]).collect();
    if unknowns.is_empty() {
        return Vec::new();
    }
    let mut slot = vec![usize::MAX; x.len()];
    for (k, &c) in unknowns.iter().enumerate() {
        slot[c] = k;
    }
    // Each equation as terms over the unknowns and a right-hand side from the published cells.
    let system: Vec<(Vec<(usize, f64)>, f64)> = lattice
        .equations
        .iter()
        .filter_map(|eq| {
            let mut terms = Vec::new();
            let mut rhs = 0.0;
            for &(c, k) in eq {
                if x[c] {
                    terms.push((slot[c], k));
                } else {
                    rhs -= k * lattice.cells[c].value as f64;
                }
            }
            (!terms.is_empty()).then_some((terms, rhs))
        })
        .collect();
    // Only the unknowns linked to the target through shared equations matter: solve per component.
    let mut parent: Vec<usize> = (0..unknowns.len()).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for (terms, _) in &system {
        for w in terms.windows(2) {
            let (a, b) = (find(&mut parent, w[0].0), find(&mut parent, w[1].0));
            parent[a] = b;
        }
    }
    let mut out = Vec::with_capacity(unknowns.len());
    for (k, &cell) in unknowns.iter().enumerate() {
        let root = find(&mut parent, k);
        let members: Vec<usize> = (0..unknowns.len())
            .filter(|&j| find(&mut parent, j) == root)
            .collect();
        let local: std::collections::HashMap<usize, usize> =
            members.iter().enumerate().map(|(i, &j)| (j, i)).collect();
        let solve = |direction| -> f64 {
            let mut p = Problem::new(direction);
            let vars: Vec<_> = members
                .iter()
                .map(|&j| p.add_var(if j == k { 1.0 } else { 0.0 }, (0.0, f64::INFINITY)))
                .collect();
            for (terms, rhs) in &system {
                if local.contains_key(&terms[0].0) {
                    let expr: Vec<_> = terms.iter().map(|(j, c)| (vars[local[j]], *c)).collect();
                    p.add_constraint(expr.as_slice(), ComparisonOp::Eq, *rhs);
                }
            }
            match p.solve() {
                Ok(microlp::SolveOutcome::Solution(s)) => s.objective(),
                Err(microlp::Error::Unbounded) => f64::INFINITY,
                // Infeasible or interrupted cannot happen for a release made from real counts; count the
                // cell as exposed so that the caller suppresses more rather than less.
                _ => f64::NAN,
            }
        };
        let min = solve(OptimizationDirection::Minimize);
        let max = solve(OptimizationDirection::Maximize);
        let (min, max) = if min.is_nan() || max.is_nan() {
            (0.0, 0.0)
        } else {
            (min, max)
        };
        out.push(Interval { cell, min, max });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2 × 2 table with margins: cells a b / c d, row totals, column totals, grand total.
    fn two_by_two(v: [i64; 4]) -> Lattice {
        let [a, b, c, d] = v;
        let values = [a, b, a + b, c, d, c + d, a + c, b + d, a + b + c + d];
        let cells = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Cell {
                value,
                respondents: value as usize,
                margin: i % 3 == 2 || i >= 6,
            })
            .collect();
        // Layout: 0 a, 1 b, 2 a+b, 3 c, 4 d, 5 c+d, 6 a+c, 7 b+d, 8 total.
        let equations = vec![
            vec![(0, 1.0), (1, 1.0), (2, -1.0)],
            vec![(3, 1.0), (4, 1.0), (5, -1.0)],
            vec![(0, 1.0), (3, 1.0), (6, -1.0)],
            vec![(1, 1.0), (4, 1.0), (7, -1.0)],
            vec![(6, 1.0), (7, 1.0), (8, -1.0)],
            vec![(2, 1.0), (5, 1.0), (8, -1.0)],
        ];
        Lattice { cells, equations }
    }

    #[test]
    fn a_single_respondent_takes_its_row_and_column_and_the_opposite_corner() {
        let lattice = two_by_two([1, 5, 7, 9]);
        let x = suppress(&lattice, 2);
        assert_eq!(&x[..5], &[true, true, false, true, true]);
        for iv in intervals(&lattice, &x) {
            assert!(iv.max - iv.min >= 1.0, "{iv:?}");
        }
    }

    #[test]
    fn the_attacker_finds_a_lone_x_at_once() {
        let lattice = two_by_two([1, 5, 7, 9]);
        let mut x = vec![false; 9];
        x[0] = true;
        assert_eq!(
            intervals(&lattice, &x),
            vec![Interval {
                cell: 0,
                min: 1.0,
                max: 1.0
            }]
        );
    }

    #[test]
    fn nothing_below_the_threshold_suppresses_nothing() {
        let lattice = two_by_two([3, 5, 7, 9]);
        assert!(suppress(&lattice, 2).iter().all(|x| !x));
        assert!(suppress(&lattice, 1).iter().all(|x| !x));
    }
}
