//! Slice positions of a series: Image Position (Patient) projected on the slice normal (the cross
//! product of the Image Orientation (Patient) row and column directions), so gaps are found in
//! oblique stacks too and no instance count or Instance Number is trusted.

use std::collections::HashMap;

use super::facts::InstanceFacts;

/// Positions closer than this along the normal are the same slice position.
pub(crate) const SAME_POSITION_MM: f64 = 0.01;
/// A step larger than this many times the median spacing holds missing slices.
pub(crate) const GAP_FACTOR: f64 = 1.5;
/// A step differing from the median spacing by more than this fraction of it is uneven.
pub(crate) const UNEVEN_FRACTION: f64 = 0.1;
/// Largest difference between direction cosines of images of one stack.
const ORIENTATION_TOLERANCE: f64 = 1e-3;

/// A run of missing slices between two received slice positions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gap {
    /// Instance Number of the images on either side (the smallest at that position).
    pub before_instance: Option<i64>,
    pub after_instance: Option<i64>,
    pub step_mm: f64,
    pub missing: usize,
}

/// A step between neighbouring positions that is neither the usual spacing nor a gap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub before_instance: Option<i64>,
    pub after_instance: Option<i64>,
    pub step_mm: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stack {
    /// Distinct slice positions.
    pub positions: usize,
    /// Median centre-to-centre distance of neighbouring positions.
    pub spacing_mm: f64,
    pub gaps: Vec<Gap>,
    pub uneven: Vec<Step>,
    /// Images that repeat another image's position, phase and echo.
    pub duplicate_images: usize,
    /// Positions holding such repeats.
    pub duplicate_positions: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Geometry {
    /// Why the positions cannot be checked.
    NotCheckable(String),
    /// Every image at one position: a single slice, or a single-slice cine.
    OnePosition {
        duplicate_images: usize,
    },
    Stack(Stack),
}

/// What tells images at one position apart (phase, echo, temporal position, b-value).
type StackKey = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);

fn stack_key(i: &InstanceFacts) -> StackKey {
    let round = |v: Option<f64>, scale: f64| v.filter(|x| x.is_finite()).map(|x| (x * scale).round() as i64);
    (
        i.echo_number,
        round(i.trigger_time_ms, 10.0),
        i.temporal_position_identifier,
        round(i.diffusion_b_value_s_per_mm2, 1.0),
    )
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// The unit slice normal of an orientation, if the orientation is two perpendicular unit vectors.
pub(crate) fn normal(o: &[f64; 6]) -> Option<[f64; 3]> {
    let row = [o[0], o[1], o[2]];
    let col = [o[3], o[4], o[5]];
    if o.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let unit = |v: [f64; 3]| (dot(v, v).sqrt() - 1.0).abs() < 0.01;
    if !unit(row) || !unit(col) || dot(row, col).abs() > 0.01 {
        return None;
    }
    let n = cross(row, col);
    let len = dot(n, n).sqrt();
    Some([n[0] / len, n[1] / len, n[2] / len])
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Analyses the slice positions of distinct instances of one series.
pub(crate) fn analyse(images: &[&InstanceFacts]) -> Geometry {
    if images.is_empty() {
        return Geometry::NotCheckable("the series has no images".into());
    }
    if let Some(frames) = images.iter().filter_map(|i| i.number_of_frames).filter(|&f| f > 1).max() {
        return Geometry::NotCheckable(format!(
            "the images are multi-frame objects (up to {frames} frames each), whose slice positions are per frame"
        ));
    }
    let without_position = images.iter().filter(|i| i.image_position_patient_mm.is_none()).count();
    if without_position > 0 {
        return Geometry::NotCheckable(format!(
            "{without_position} of {} images have no Image Position (Patient)",
            images.len()
        ));
    }
    let without_orientation = images.iter().filter(|i| i.image_orientation_patient.is_none()).count();
    if without_orientation > 0 {
        return Geometry::NotCheckable(format!(
            "{without_orientation} of {} images have no Image Orientation (Patient)",
            images.len()
        ));
    }
    let orientations: Vec<[f64; 6]> = images.iter().filter_map(|i| i.image_orientation_patient).collect();
    let Some(first) = orientations.first().copied() else {
        return Geometry::NotCheckable("no Image Orientation (Patient)".into());
    };
    let Some(n) = normal(&first) else {
        return Geometry::NotCheckable(
            "Image Orientation (Patient) is not two perpendicular unit direction vectors".into(),
        );
    };
    if orientations.iter().any(|o| o.iter().zip(first.iter()).any(|(a, b)| (a - b).abs() > ORIENTATION_TOLERANCE)) {
        return Geometry::NotCheckable("the images do not all have the same orientation".into());
    }

    let mut located: Vec<(f64, Option<i64>, StackKey)> = Vec::with_capacity(images.len());
    for i in images {
        let Some(p) = i.image_position_patient_mm else { continue };
        if p.iter().any(|v| !v.is_finite()) {
            return Geometry::NotCheckable("an Image Position (Patient) is not a number".into());
        }
        located.push((dot(p, n), i.instance_number, stack_key(i)));
    }
    located.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Group into positions: (position along the normal, smallest instance number, images).
    struct Position {
        at: f64,
        instance: Option<i64>,
        keys: HashMap<StackKey, usize>,
    }
    let mut positions: Vec<Position> = Vec::new();
    for (d, instance, key) in located {
        match positions.last_mut() {
            Some(p) if d - p.at <= SAME_POSITION_MM => {
                *p.keys.entry(key).or_insert(0) += 1;
                p.instance = match (p.instance, instance) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            _ => positions.push(Position { at: d, instance, keys: HashMap::from([(key, 1)]) }),
        }
    }
    let duplicate_images: usize = positions.iter().flat_map(|p| p.keys.values()).map(|&c| c.saturating_sub(1)).sum();
    let duplicate_positions = positions.iter().filter(|p| p.keys.values().any(|&c| c > 1)).count();
    if positions.len() < 2 {
        return Geometry::OnePosition { duplicate_images };
    }

    let steps: Vec<f64> = positions.windows(2).map(|w| w[1].at - w[0].at).collect();
    let mut sorted = steps.clone();
    sorted.sort_by(f64::total_cmp);
    let spacing = median(&sorted);
    let tolerance = (UNEVEN_FRACTION * spacing).max(SAME_POSITION_MM);
    let mut gaps = Vec::new();
    let mut uneven = Vec::new();
    for (k, &step) in steps.iter().enumerate() {
        // Name the neighbours in Instance Number order, as the site's viewer lists them.
        let (before, after) = match (positions[k].instance, positions[k + 1].instance) {
            (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
            pair => pair,
        };
        if step > GAP_FACTOR * spacing {
            let missing = ((step / spacing).round() as usize).saturating_sub(1).max(1);
            gaps.push(Gap { before_instance: before, after_instance: after, step_mm: step, missing });
        } else if (step - spacing).abs() > tolerance {
            uneven.push(Step { before_instance: before, after_instance: after, step_mm: step });
        }
    }
    Geometry::Stack(Stack {
        positions: positions.len(),
        spacing_mm: spacing,
        gaps,
        uneven,
        duplicate_images,
        duplicate_positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    fn image(n: i64, pos: [f64; 3], ori: [f64; 6]) -> InstanceFacts {
        InstanceFacts {
            instance_number: Some(n),
            image_position_patient_mm: Some(pos),
            image_orientation_patient: Some(ori),
            ..InstanceFacts::default()
        }
    }

    fn axial(zs: &[f64]) -> Vec<InstanceFacts> {
        zs.iter().enumerate().map(|(k, &z)| image(k as i64 + 1, [-100.0, -120.0, z], AXIAL)).collect()
    }

    fn run(v: &[InstanceFacts]) -> Geometry {
        analyse(&v.iter().collect::<Vec<_>>())
    }

    fn stack(g: Geometry) -> Stack {
        match g {
            Geometry::Stack(s) => s,
            other => panic!("expected a stack, got {other:?}"),
        }
    }

    #[test]
    fn regular_stack_in_any_order() {
        let mut v = axial(&[0.0, 5.0, 10.0, 15.0, 20.0]);
        v.reverse();
        let s = stack(run(&v));
        assert_eq!(s.positions, 5);
        assert!((s.spacing_mm - 5.0).abs() < 1e-9);
        assert!(s.gaps.is_empty() && s.uneven.is_empty() && s.duplicate_images == 0);
    }

    #[test]
    fn gap_of_three_steps_is_two_missing_slices() {
        let s = stack(run(&axial(&[0.0, 5.0, 10.0, 25.0, 30.0, 35.0])));
        assert_eq!(s.gaps.len(), 1);
        assert_eq!(s.gaps[0].missing, 2);
        assert_eq!((s.gaps[0].before_instance, s.gaps[0].after_instance), (Some(3), Some(4)));
        assert!(s.uneven.is_empty());
    }

    #[test]
    fn gap_boundary_is_one_and_a_half_spacings() {
        // exactly 1.5 x: not a gap, but uneven; just over: one missing slice
        let s = stack(run(&axial(&[0.0, 2.0, 4.0, 7.0, 9.0, 11.0])));
        assert!(s.gaps.is_empty());
        assert_eq!(s.uneven.len(), 1);
        let s = stack(run(&axial(&[0.0, 2.0, 4.0, 7.01, 9.01, 11.01])));
        assert_eq!(s.gaps.len(), 1);
        assert_eq!(s.gaps[0].missing, 1);
    }

    #[test]
    fn oblique_stack_projects_on_the_normal() {
        // rows along x, columns tilted 30 degrees from y towards z; slices step along the normal
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let ori = [1.0, 0.0, 0.0, 0.0, c, s];
        let n = normal(&ori).unwrap();
        let origin = [-50.0, -80.0, 30.0];
        let at = |k: f64| {
            // a little in-plane shift per slice must not matter
            let shift = 0.7 * k;
            [origin[0] + n[0] * 3.0 * k + shift, origin[1] + n[1] * 3.0 * k, origin[2] + n[2] * 3.0 * k]
        };
        let ks = [0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0];
        let v: Vec<InstanceFacts> = ks.iter().enumerate().map(|(i, &k)| image(i as i64 + 1, at(k), ori)).collect();
        let st = stack(run(&v));
        assert!((st.spacing_mm - 3.0).abs() < 1e-9, "{}", st.spacing_mm);
        assert_eq!(st.gaps.len(), 1);
        assert_eq!(st.gaps[0].missing, 2);
        // the z distance alone (3 * cos 30 = 2.6 mm) is not the spacing
        assert!((at(1.0)[2] - at(0.0)[2] - 2.598).abs() < 1e-3);
    }

    #[test]
    fn duplicates_and_phases() {
        // the same position twice with the same (no) phase: duplicate
        let s = stack(run(&axial(&[0.0, 5.0, 5.0, 10.0])));
        assert_eq!((s.duplicate_images, s.duplicate_positions, s.positions), (1, 1, 3));
        assert!(s.gaps.is_empty());
        // two cardiac phases per position: not duplicates
        let mut v = Vec::new();
        for (k, z) in [0.0, 8.0, 16.0].iter().enumerate() {
            for (p, t) in [0.0, 40.0].iter().enumerate() {
                let mut i = image((k * 2 + p) as i64 + 1, [0.0, 0.0, *z], AXIAL);
                i.trigger_time_ms = Some(*t);
                v.push(i);
            }
        }
        let s = stack(run(&v));
        assert_eq!((s.duplicate_images, s.positions), (0, 3));
    }

    #[test]
    fn not_checkable_cases() {
        let mut v = axial(&[0.0, 5.0]);
        v[1].image_position_patient_mm = None;
        assert!(matches!(run(&v), Geometry::NotCheckable(r) if r.contains("1 of 2 images have no Image Position")));
        let mut v = axial(&[0.0, 5.0]);
        v[0].number_of_frames = Some(120);
        assert!(matches!(run(&v), Geometry::NotCheckable(r) if r.contains("multi-frame")));
        let mut v = axial(&[0.0, 5.0, 10.0]);
        v[2].image_orientation_patient = Some([1.0, 0.0, 0.0, 0.0, 0.0, -1.0]);
        assert!(matches!(run(&v), Geometry::NotCheckable(r) if r.contains("same orientation")));
        let mut v = axial(&[0.0, 5.0]);
        for i in &mut v {
            i.image_orientation_patient = Some([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        }
        assert!(matches!(run(&v), Geometry::NotCheckable(r) if r.contains("perpendicular")));
        assert_eq!(run(&axial(&[3.0])), Geometry::OnePosition { duplicate_images: 0 });
        assert!(matches!(run(&[]), Geometry::NotCheckable(_)));
    }
}
