//! Hexagon geometry (spec §1.7): the twelve neighbours of a hexagon and the list of hexagons
//! that new synapse sections may grow into.

use std::collections::HashMap;

use crate::rng::Rng;
use crate::template::Position;

/// Sides per hexagon. Side `s` and side `11 - s` are opposite.
pub(crate) const SIDES: usize = 12;
/// Entries in a hexagon's growth-target list.
pub(crate) const GROWTH_TARGETS: usize = 86;
/// "No hexagon" in neighbour and target lists.
pub(crate) const NO_HEXAGON: u32 = u32::MAX;
/// The sides a growth walk may take (towards +x, ±z and the rows beside).
const FORWARD_SIDES: [usize; 7] = [9, 3, 1, 4, 11, 5, 2];

/// `(dy, dz, dx for even y, dx for odd y)` of each side.
const SIDE_OFFSETS: [(i32, i32, i32, i32); SIDES] = [
    (-1, -1, -1, 0),
    (-1, -1, 0, 1),
    (0, -1, 0, 0),
    (-1, 0, 0, 1),
    (0, 0, 1, 1),
    (1, 0, 0, 1),
    (-1, 0, -1, 0),
    (0, 0, -1, -1),
    (1, 0, -1, 0),
    (0, 1, 0, 0),
    (1, 1, -1, 0),
    (1, 1, 0, 1),
];

/// The position across `side` (arithmetic wraps on `u32`, as in the original).
pub(crate) fn neighbour_position(p: Position, side: usize) -> Position {
    let (dy, dz, dx_even, dx_odd) = SIDE_OFFSETS[side];
    let dx = if p.y.is_multiple_of(2) {
        dx_even
    } else {
        dx_odd
    };
    Position {
        x: p.x.wrapping_add_signed(dx),
        y: p.y.wrapping_add_signed(dy),
        z: p.z.wrapping_add_signed(dz),
    }
}

/// Neighbour ids of every hexagon, `NO_HEXAGON` where a side has none.
pub(crate) fn neighbours(positions: &[Position]) -> Vec<[u32; SIDES]> {
    let index: HashMap<Position, u32> = positions
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i as u32))
        .collect();
    positions
        .iter()
        .map(|&p| {
            std::array::from_fn(|side| {
                index
                    .get(&neighbour_position(p, side))
                    .copied()
                    .unwrap_or(NO_HEXAGON)
            })
        })
        .collect()
}

/// Walk length for a target: `1..=max_distance`, with probability proportional to `1/d`, so
/// nearer hexagons are more likely (spec §11.1 B11, decided F). Distance 1 needs no draw.
fn walk_length(max_distance: u32, rng: &mut Rng) -> u32 {
    if max_distance <= 1 {
        return 1;
    }
    let total: f64 = (1..=max_distance).map(|d| 1.0 / f64::from(d)).sum();
    let mut u = rng.unit() * total;
    for d in 1..max_distance {
        u -= 1.0 / f64::from(d);
        if u < 0.0 {
            return d;
        }
    }
    max_distance
}

/// The growth-target list of hexagon `base`: each entry is the end of its own random walk
/// over forward sides. A walk that ends where it began, or in an input hexagon (spec §11.1
/// B19), gives `NO_HEXAGON`. Output hexagons never project, so their lists are empty.
pub(crate) fn growth_targets(
    base: usize,
    neighbours: &[[u32; SIDES]],
    is_input: &[bool],
    is_output: &[bool],
    max_distance: u32,
    rng: &mut Rng,
) -> [u32; GROWTH_TARGETS] {
    let mut targets = [NO_HEXAGON; GROWTH_TARGETS];
    if is_output[base] {
        return targets;
    }
    for entry in targets.iter_mut() {
        let steps = walk_length(max_distance, rng);
        let mut current = base;
        for _ in 0..steps {
            // The start index is the side *value* mod 7, as in the original: biased on purpose.
            let start = FORWARD_SIDES[rng.below(FORWARD_SIDES.len())] % FORWARD_SIDES.len();
            match step(neighbours, current, start) {
                Some(next) => current = next,
                None => break,
            }
        }
        if current != base && !is_input[current] {
            *entry = current as u32;
        }
    }
    targets
}

/// One step of a growth walk from `current`: the first neighbour that exists on the forward
/// sides, tried in order from index `start`; `None` at a dead end.
fn step(neighbours: &[[u32; SIDES]], current: usize, start: usize) -> Option<usize> {
    (0..FORWARD_SIDES.len())
        .map(|i| neighbours[current][FORWARD_SIDES[(start + i) % FORWARD_SIDES.len()]])
        .find(|&next| next != NO_HEXAGON)
        .map(|next| next as usize)
}

/// Every hexagon that some growth walk from `base` can end in, whatever the random draws
/// (the rules of [`growth_targets`]: 1 to `max_distance` steps, an early stop at a dead end,
/// never the base or an input hexagon). Empty for output hexagons.
fn possible_targets(
    base: usize,
    neighbours: &[[u32; SIDES]],
    is_input: &[bool],
    is_output: &[bool],
    max_distance: u32,
) -> Vec<usize> {
    if is_output[base] {
        return Vec::new();
    }
    let mut starts: Vec<usize> = FORWARD_SIDES
        .iter()
        .map(|side| side % FORWARD_SIDES.len())
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut frontier = vec![base];
    let mut ends = vec![false; neighbours.len()];
    for _ in 0..max_distance.max(1) {
        let mut next: Vec<usize> = frontier
            .iter()
            .flat_map(|&current| {
                starts
                    .iter()
                    .filter_map(move |&start| step(neighbours, current, start))
            })
            .collect();
        next.sort_unstable();
        next.dedup();
        // A walk that meets a dead end ends there; it was counted when it arrived. The
        // same places again: longer walks end in them too.
        if next.is_empty() || next == frontier {
            break;
        }
        for &hexagon in &next {
            ends[hexagon] = true;
        }
        frontier = next;
    }
    (0..ends.len())
        .filter(|&h| ends[h] && h != base && !is_input[h])
        .collect()
}

/// Which hexagons growth can reach from the hexagons marked in `from`, through hexagons
/// that project further (every one but the outputs), along the given growth-target lists.
pub(crate) fn reachable(targets: &[[u32; GROWTH_TARGETS]], from: &[bool]) -> Vec<bool> {
    reach(from, |hexagon| {
        targets[hexagon]
            .iter()
            .filter(|&&t| t != NO_HEXAGON)
            .map(|&t| t as usize)
            .collect()
    })
}

/// Which hexagons growth could reach from the hexagons marked in `from` with some
/// growth-target lists, whatever the random draws that make them.
pub(crate) fn reachable_at_all(
    neighbours: &[[u32; SIDES]],
    is_input: &[bool],
    is_output: &[bool],
    max_distance: u32,
    from: &[bool],
) -> Vec<bool> {
    reach(from, |hexagon| {
        possible_targets(hexagon, neighbours, is_input, is_output, max_distance)
    })
}

fn reach(from: &[bool], targets: impl Fn(usize) -> Vec<usize>) -> Vec<bool> {
    let mut reached = from.to_vec();
    let mut pending: Vec<usize> = (0..from.len()).filter(|&h| from[h]).collect();
    while let Some(hexagon) = pending.pop() {
        for target in targets(hexagon) {
            if !reached[target] {
                reached[target] = true;
                pending.push(target);
            }
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Vec<Position> {
        (1..=3).map(|x| Position { x, y: 1, z: 1 }).collect()
    }

    #[test]
    fn opposite_sides_are_symmetric() {
        for y in 0..2 {
            let p = Position {
                x: 5,
                y: 4 + y,
                z: 5,
            };
            for side in 0..SIDES {
                let q = neighbour_position(p, side);
                assert_eq!(
                    neighbour_position(q, SIDES - 1 - side),
                    p,
                    "side {side}, y {}",
                    p.y
                );
            }
        }
    }

    #[test]
    fn unit_test_template_neighbours_and_targets() {
        let n = neighbours(&line());
        let only = |h: usize| -> Vec<(usize, u32)> {
            n[h].iter()
                .enumerate()
                .filter(|(_, v)| **v != NO_HEXAGON)
                .map(|(s, v)| (s, *v))
                .collect()
        };
        assert_eq!(only(0), vec![(4, 1)]);
        assert_eq!(only(1), vec![(4, 2), (7, 0)]);
        assert_eq!(only(2), vec![(7, 1)]);
        let is_input = [true, false, false];
        let is_output = [false, false, true];
        let mut rng = Rng::new(1);
        // distance 1: always the next hexagon along +x
        assert!(
            growth_targets(0, &n, &is_input, &is_output, 1, &mut rng)
                .iter()
                .all(|&t| t == 1)
        );
        assert!(
            growth_targets(1, &n, &is_input, &is_output, 1, &mut rng)
                .iter()
                .all(|&t| t == 2)
        );
        assert!(
            growth_targets(2, &n, &is_input, &is_output, 1, &mut rng)
                .iter()
                .all(|&t| t == NO_HEXAGON)
        );
        // distance 3 is a maximum: both 1 and 2 are reached, 1 more often
        let t = growth_targets(0, &n, &is_input, &is_output, 3, &mut rng);
        let ones = t.iter().filter(|&&x| x == 1).count();
        let twos = t.iter().filter(|&&x| x == 2).count();
        assert_eq!(ones + twos, GROWTH_TARGETS);
        assert!(ones > twos && twos > 0, "{ones} {twos}");
    }

    #[test]
    fn walks_never_end_in_input_hexagons_or_at_the_base() {
        // Two inputs side by side in z, hidden beyond: z-walks may come back to the base.
        let p = vec![
            Position { x: 1, y: 1, z: 1 },
            Position { x: 1, y: 1, z: 2 },
            Position { x: 2, y: 1, z: 1 },
        ];
        let n = neighbours(&p);
        let mut rng = Rng::new(3);
        let t = growth_targets(
            0,
            &n,
            &[true, true, false],
            &[false, false, true],
            2,
            &mut rng,
        );
        assert!(t.iter().all(|&x| x == NO_HEXAGON || x == 2));
        assert!(t.contains(&2));
    }

    /// Every target a random walk draws is among the targets any walk can reach, so a
    /// cluster that reaches its outputs passes the check whatever the seed, and one that
    /// cannot is told so for every seed.
    #[test]
    fn drawn_targets_are_possible_targets() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let mut positions: Vec<Position> = Vec::new();
            while positions.len() < 3 + (round % 5) {
                let p = Position {
                    x: 1 + (next() % 3) as u32,
                    y: 1 + (next() % 3) as u32,
                    z: 1 + (next() % 2) as u32,
                };
                if !positions.contains(&p) {
                    positions.push(p);
                }
            }
            let n = neighbours(&positions);
            let count = positions.len();
            let is_input: Vec<bool> = (0..count).map(|h| h == 0).collect();
            let is_output: Vec<bool> = (0..count).map(|h| h == count - 1).collect();
            let distance = 1 + (next() % 4) as u32;
            let mut rng = Rng::new(round as u64);
            for base in 0..count {
                let possible = possible_targets(base, &n, &is_input, &is_output, distance);
                let drawn = growth_targets(base, &n, &is_input, &is_output, distance, &mut rng);
                for target in drawn.into_iter().filter(|&t| t != NO_HEXAGON) {
                    assert!(
                        possible.contains(&(target as usize)),
                        "{positions:?}, distance {distance}: {base} drew {target}, \
                         possible {possible:?}"
                    );
                }
            }
        }
    }
}
