//! A rotatable 3-D scatter of latent means, painted as one mesh.
//!
//! Drag to orbit, wheel to zoom, double-click to reset. Points are centred and scaled to fit, then
//! rotated (yaw about the vertical axis, pitch about the horizontal) and projected orthographically.
//! Every point is one small quad in a single [`egui::Mesh`], so 100,000 points stay cheap.

use egui::{Color32, Mesh, Pos2, Rect, Sense, Stroke, Vec2, vec2};
use serde::{Deserialize, Serialize};

/// Orbit camera of a 3-D panel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Rotation about the vertical axis (radians).
    pub yaw: f32,
    /// Rotation about the horizontal axis (radians).
    pub pitch: f32,
    /// Zoom factor (1 = fit).
    pub zoom: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Self {
            yaw: 0.7,
            pitch: 0.45,
            zoom: 1.0,
        }
    }
}

impl Camera {
    /// Rotates a point into view space: returns (x right, y up, depth towards the viewer).
    pub fn rotate(&self, p: [f32; 3]) -> [f32; 3] {
        let (sy, cy) = self.yaw.sin_cos();
        let (sp, cp) = self.pitch.sin_cos();
        // Yaw about the y axis.
        let x1 = cy * p[0] + sy * p[2];
        let z1 = -sy * p[0] + cy * p[2];
        // Pitch about the x axis.
        let y2 = cp * p[1] - sp * z1;
        let z2 = sp * p[1] + cp * z1;
        [x1, y2, z2]
    }

    /// Screen position of a (normalised) point in `rect`.
    pub fn project(&self, p: [f32; 3], rect: Rect) -> Pos2 {
        let r = self.rotate(p);
        let scale = 0.42 * rect.width().min(rect.height()) * self.zoom;
        rect.center() + vec2(r[0] * scale, -r[1] * scale)
    }

    /// Applies a drag (pixels) and a wheel (scroll pixels) to the camera.
    pub fn orbit(&mut self, drag: Vec2, wheel: f32) {
        self.yaw += drag.x * 0.01;
        self.pitch = (self.pitch + drag.y * 0.01).clamp(-1.55, 1.55);
        self.zoom = (self.zoom * (wheel * 0.002).exp()).clamp(0.2, 20.0);
    }
}

/// Points ready to paint: normalised positions and colours.
pub struct Cloud<'a> {
    /// Positions, centred and scaled into about [-1, 1].
    pub points: &'a [[f32; 3]],
    /// One colour per point.
    pub colors: &'a [Color32],
    /// Names of the three axes.
    pub axis_names: [String; 3],
    /// A point to draw larger (the hovered or selected one).
    pub highlight: Option<usize>,
    /// Points of the selection (drawn with a halo); empty for none.
    pub selected: &'a [bool],
}

/// What the user did to the panel this frame.
pub struct ScatterResponse {
    /// The widget's response.
    pub response: egui::Response,
    /// The point under the pointer, if any.
    pub hovered: Option<usize>,
    /// The points inside a box just drawn with shift + drag.
    pub boxed: Option<Vec<usize>>,
}

/// Centres each axis on its mean and scales all three by the largest spread, so that the cloud
/// keeps its shape. Returns the normalised points.
pub fn normalise(raw: &[[f32; 3]]) -> Vec<[f32; 3]> {
    if raw.is_empty() {
        return Vec::new();
    }
    let n = raw.len() as f32;
    let mut mean = [0f32; 3];
    for p in raw {
        for a in 0..3 {
            mean[a] += p[a] / n;
        }
    }
    let mut extent = 1e-6f32;
    for p in raw {
        for a in 0..3 {
            extent = extent.max((p[a] - mean[a]).abs());
        }
    }
    raw.iter()
        .map(|p| {
            [
                (p[0] - mean[0]) / extent,
                (p[1] - mean[1]) / extent,
                (p[2] - mean[2]) / extent,
            ]
        })
        .collect()
}

/// Draws the scatter into `size` and handles orbit, zoom, reset and hover.
pub fn scatter_ui(
    ui: &mut egui::Ui,
    camera: &mut Camera,
    cloud: &Cloud<'_>,
    size: Vec2,
    point_px: f32,
) -> ScatterResponse {
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Latent space 3-D scatter")
    });
    // Shift + drag draws a selection box; a plain drag orbits.
    let box_id = response.id.with("box-start");
    let shift = ui.input(|i| i.modifiers.shift);
    if response.drag_started()
        && shift
        && let Some(start) = ui
            .input(|i| i.pointer.press_origin())
            .or(response.interact_pointer_pos())
    {
        ui.data_mut(|d| d.insert_temp(box_id, (start, start)));
    }
    // The box's corners: where the drag started, and where the pointer was last seen.
    let mut dragged_box: Option<(Pos2, Pos2)> = ui.data(|d| d.get_temp(box_id));
    if let (Some((start, _)), Some(now)) = (dragged_box, response.interact_pointer_pos()) {
        dragged_box = Some((start, now));
        ui.data_mut(|d| d.insert_temp(box_id, (start, now)));
    }
    if response.dragged() && dragged_box.is_none() {
        camera.orbit(response.drag_delta(), 0.0);
    }
    if response.hovered() {
        let wheel = ui.input(|i| i.smooth_scroll_delta.y);
        if wheel != 0.0 {
            camera.orbit(Vec2::ZERO, wheel);
        }
    }
    if response.double_clicked() {
        *camera = Camera::default();
    }

    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, super::colormap::BACKDROP);

    // Axes through the origin, with their names.
    let axis_colors = [
        Color32::from_rgb(220, 80, 80),
        Color32::from_rgb(80, 190, 80),
        Color32::from_rgb(90, 130, 240),
    ];
    for a in 0..3 {
        let mut tip = [0f32; 3];
        tip[a] = 1.1;
        let mut tail = [0f32; 3];
        tail[a] = -1.1;
        let (p0, p1) = (camera.project(tail, rect), camera.project(tip, rect));
        painter.line_segment(
            [p0, p1],
            Stroke::new(1.0, axis_colors[a].gamma_multiply(0.8)),
        );
        painter.text(
            p1,
            egui::Align2::LEFT_BOTTOM,
            &cloud.axis_names[a],
            egui::FontId::proportional(12.0),
            Color32::from_gray(245),
        );
    }

    // All points in one mesh, far ones first.
    let projected: Vec<(Pos2, f32)> = cloud
        .points
        .iter()
        .map(|&p| {
            let depth = camera.rotate(p)[2];
            (camera.project(p, rect), depth)
        })
        .collect();
    let mut order: Vec<u32> = (0..projected.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| projected[a as usize].1.total_cmp(&projected[b as usize].1));
    let selecting = cloud.selected.iter().any(|&s| s);
    let is_selected = |i: u32| cloud.selected.get(i as usize).copied().unwrap_or(false);
    let mut mesh = Mesh::default();
    mesh.reserve_triangles(order.len() * 2);
    mesh.reserve_vertices(order.len() * 4);
    let half = point_px * 0.5;
    for &i in &order {
        let (pos, _) = projected[i as usize];
        if !rect.contains(pos) {
            continue;
        }
        let color = cloud
            .colors
            .get(i as usize)
            .copied()
            .unwrap_or(Color32::GRAY);
        // With a selection, the rest fades so that the selected windows stand out.
        let color = if selecting && !is_selected(i) {
            color.gamma_multiply(0.15)
        } else {
            color
        };
        mesh.add_colored_rect(
            Rect::from_center_size(pos, vec2(2.0 * half, 2.0 * half)),
            color,
        );
    }
    painter.add(egui::Shape::mesh(mesh));
    // The selected points again, on top, each with a rim.
    if selecting {
        let mut top = Mesh::default();
        let rim = ui.visuals().strong_text_color();
        for &i in order.iter().filter(|&&i| is_selected(i)) {
            let (pos, _) = projected[i as usize];
            if !rect.contains(pos) {
                continue;
            }
            let color = cloud
                .colors
                .get(i as usize)
                .copied()
                .unwrap_or(Color32::GRAY);
            top.add_colored_rect(
                Rect::from_center_size(pos, vec2(point_px + 2.0, point_px + 2.0)),
                rim,
            );
            top.add_colored_rect(Rect::from_center_size(pos, vec2(point_px, point_px)), color);
        }
        painter.add(egui::Shape::mesh(top));
    }

    // Hover: the nearest point within 6 px.
    let mut hovered = None;
    if let Some(pointer) = response.hover_pos() {
        let mut best = 36.0f32;
        for (i, (pos, _)) in projected.iter().enumerate() {
            let d = pos.distance_sq(pointer);
            if d < best {
                best = d;
                hovered = Some(i);
            }
        }
    }
    if let Some(i) = cloud.highlight.or(hovered)
        && let Some((pos, _)) = projected.get(i)
    {
        painter.circle_stroke(
            *pos,
            point_px + 3.0,
            Stroke::new(2.0, ui.visuals().strong_text_color()),
        );
    }
    let mut boxed = None;
    if let Some((start, now)) = dragged_box {
        let selection = Rect::from_two_pos(start, now);
        painter.rect_stroke(
            selection,
            0.0,
            Stroke::new(1.0, ui.visuals().strong_text_color()),
            egui::StrokeKind::Inside,
        );
        if response.drag_stopped() {
            boxed = Some(
                projected
                    .iter()
                    .enumerate()
                    .filter(|(_, (pos, _))| selection.contains(*pos) && rect.contains(*pos))
                    .map(|(i, _)| i)
                    .collect(),
            );
        }
    }
    if response.drag_stopped() || !response.dragged() && !response.drag_started() {
        ui.data_mut(|d| d.remove::<(Pos2, Pos2)>(box_id));
    }
    // The full hint where it fits, else the count and the main gesture; light text on the
    // backdrop in either theme.
    let hint_color = Color32::from_gray(215);
    let font = egui::FontId::proportional(12.0);
    let full = format!(
        "{} points · drag to orbit · shift + drag to select · wheel to zoom · double-click to reset",
        cloud.points.len()
    );
    let mut galley = painter.layout_no_wrap(full, font.clone(), hint_color);
    if galley.size().x > rect.width() - 12.0 {
        let short = format!("{} points · drag to orbit", cloud.points.len());
        galley = painter.layout_no_wrap(short, font, hint_color);
    }
    painter.galley(
        rect.left_bottom() + vec2(6.0, -6.0 - galley.size().y),
        galley,
        hint_color,
    );
    ScatterResponse {
        response,
        hovered,
        boxed,
    }
}

/// The top three principal components of `rows` (`[n * dim]`, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    /// Unit axes, by decreasing variance (zero vectors past `dim`).
    pub axes: [Vec<f32>; 3],
    /// The share of the total variance along each axis.
    pub explained: [f32; 3],
}

/// Principal components by a symmetric eigen-decomposition of the covariance (nalgebra). Each
/// axis's sign is the one that points along `reference`'s axis of the same rank (the axes shown
/// before: the picture does not flip between snapshots), or without one, the one that makes
/// its largest loading positive.
pub fn pca(rows: &[f32], dim: usize, reference: Option<&[Vec<f32>; 3]>) -> Pca {
    let n = rows.len().checked_div(dim).unwrap_or(0);
    let mut out = Pca {
        axes: [vec![0.0; dim], vec![0.0; dim], vec![0.0; dim]],
        explained: [0.0; 3],
    };
    if n == 0 || dim == 0 {
        return out;
    }
    let data = nalgebra::DMatrix::from_fn(n, dim, |r, c| rows[r * dim + c] as f64);
    let mean = data.row_mean();
    let centred = nalgebra::DMatrix::from_fn(n, dim, |r, c| data[(r, c)] - mean[c]);
    let cov = centred.transpose() * &centred / n as f64;
    let eigen = nalgebra::SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let total: f64 = eigen.eigenvalues.iter().map(|v| v.max(0.0)).sum();
    for (rank, &i) in order.iter().take(3).enumerate() {
        let mut axis: Vec<f32> = eigen
            .eigenvectors
            .column(i)
            .iter()
            .map(|&x| x as f32)
            .collect();
        let along = match reference.map(|r| &r[rank]).filter(|r| r.len() == dim) {
            Some(previous) => axis.iter().zip(previous).map(|(a, b)| a * b).sum::<f32>(),
            None => axis.iter().copied().fold(
                0.0f32,
                |best, x| if x.abs() > best.abs() { x } else { best },
            ),
        };
        if along < 0.0 {
            axis.iter_mut().for_each(|x| *x = -*x);
        }
        out.axes[rank] = axis;
        out.explained[rank] = if total > 0.0 {
            (eigen.eigenvalues[i].max(0.0) / total) as f32
        } else {
            0.0
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_lengths_and_yaw_turns_x_into_depth() {
        let cam = Camera {
            yaw: std::f32::consts::FRAC_PI_2,
            pitch: 0.0,
            zoom: 1.0,
        };
        let r = cam.rotate([1.0, 0.0, 0.0]);
        assert!((r[0]).abs() < 1e-6 && (r[2] + 1.0).abs() < 1e-6, "{r:?}");
        let cam = Camera {
            yaw: 0.3,
            pitch: -0.8,
            zoom: 1.0,
        };
        let r = cam.rotate([0.2, -0.5, 0.7]);
        let len = |v: [f32; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        assert!((len(r) - len([0.2, -0.5, 0.7])).abs() < 1e-5);
    }

    /// Points with a known covariance: standard deviations 3, 2, 1 (and 0.1) along the columns
    /// of a fixed rotation, drawn from a seeded generator.
    fn known_cloud(seed: u64, rotation: &nalgebra::Matrix4<f64>) -> Vec<f32> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let scales = [3.0, 2.0, 1.0, 0.1];
        let mut rows = Vec::new();
        for _ in 0..20_000 {
            let z = nalgebra::Vector4::from_fn(|i, _| {
                scales[i] * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
            });
            let x = rotation * z + nalgebra::Vector4::new(5.0, -2.0, 0.0, 1.0);
            rows.extend(x.iter().map(|&v| v as f32));
        }
        rows
    }

    #[test]
    fn pca_recovers_a_known_covariance_with_stable_signs() {
        let rotation = nalgebra::Rotation3::from_euler_angles(0.4, -0.7, 1.1);
        let mut r4 = nalgebra::Matrix4::identity();
        r4.fixed_view_mut::<3, 3>(0, 0).copy_from(rotation.matrix());
        let rows = known_cloud(1, &r4);
        let p = pca(&rows, 4, None);
        // Explained variance: 9, 4, 1 of 14.01.
        let total = 9.0 + 4.0 + 1.0 + 0.01;
        for (got, want) in p
            .explained
            .iter()
            .zip([9.0 / total, 4.0 / total, 1.0 / total])
        {
            assert!((got - want as f32).abs() < 0.01, "{:?}", p.explained);
        }
        // Each axis is the rotated column, up to its sign.
        for k in 0..3 {
            let dot: f32 = (0..4).map(|i| p.axes[k][i] * r4[(i, k)] as f32).sum();
            assert!(dot.abs() > 0.999, "axis {k}: {dot}");
        }
        // Signs: a new snapshot of nearly the same cloud keeps each axis pointing the same way
        // as the one shown before it, whatever the decomposition returns.
        let next = known_cloud(2, &r4);
        let q = pca(&next, 4, Some(&p.axes));
        for k in 0..3 {
            let dot: f32 = p.axes[k].iter().zip(&q.axes[k]).map(|(a, b)| a * b).sum();
            assert!(dot > 0.99, "axis {k} kept its sign: {dot}");
        }
        let flipped: [Vec<f32>; 3] = p.axes.clone().map(|a| a.iter().map(|x| -x).collect());
        let r = pca(&next, 4, Some(&flipped));
        for k in 0..3 {
            let dot: f32 = p.axes[k].iter().zip(&r.axes[k]).map(|(a, b)| a * b).sum();
            assert!(dot < -0.99, "axis {k} follows the reference: {dot}");
        }
        // Without a reference, the largest loading is positive.
        for axis in &p.axes {
            let largest = axis
                .iter()
                .copied()
                .fold(0.0f32, |b, x| if x.abs() > b.abs() { x } else { b });
            assert!(largest > 0.0);
        }
    }

    #[test]
    fn normalise_centres_and_fits() {
        let pts = normalise(&[[1.0, 2.0, 3.0], [3.0, 2.0, 3.0]]);
        assert_eq!(pts, vec![[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]);
    }
}
