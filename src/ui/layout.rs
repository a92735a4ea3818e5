//! The main view's layout: the panels as tiles (egui_tiles) that can be resized, dragged and
//! stacked as tabs. The series spans the top; the latent space sits bottom left; the loss, the
//! detection panel, Compare, the Fleet and Tune are tabs docked bottom right, beside the main view.

use egui_tiles::{Container, Tile, TileId, Tiles, Tree};

/// A panel of the main view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    /// Values, labels, flags and scores.
    Series,
    /// The latent space.
    Latent,
    /// The loss and its terms.
    Loss,
    /// Threshold rules, the precision-recall curve, another series scored.
    Detection,
    /// A window beside its reconstruction.
    Reconstruction,
    /// The study's experiments as guided lessons.
    Lessons,
    /// The pinned run beside the current one.
    Compare,
    /// A folder of KPIs, one model each.
    Fleet,
    /// A search over many settings at once.
    Tune,
}

impl Pane {
    /// The tab title.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Series => "Series",
            Pane::Latent => "Latent space",
            Pane::Loss => "Loss",
            Pane::Detection => "Detection",
            Pane::Reconstruction => "Reconstruction",
            Pane::Lessons => "Lessons",
            Pane::Compare => "Compare",
            Pane::Fleet => "Fleet",
            Pane::Tune => "Tune",
        }
    }
}

/// The layout a first launch gets.
pub fn default_tree() -> Tree<Pane> {
    let mut tiles = Tiles::default();
    let series = tiles.insert_pane(Pane::Series);
    let latent = tiles.insert_pane(Pane::Latent);
    let loss = tiles.insert_pane(Pane::Loss);
    let detection = tiles.insert_pane(Pane::Detection);
    let reconstruction = tiles.insert_pane(Pane::Reconstruction);
    let lessons = tiles.insert_pane(Pane::Lessons);
    let compare = tiles.insert_pane(Pane::Compare);
    let fleet = tiles.insert_pane(Pane::Fleet);
    let tune = tiles.insert_pane(Pane::Tune);
    let tabs = tiles.insert_tab_tile(vec![
        loss,
        reconstruction,
        detection,
        lessons,
        compare,
        fleet,
        tune,
    ]);
    let bottom = tiles.insert_horizontal_tile(vec![latent, tabs]);
    let root = tiles.insert_vertical_tile(vec![series, bottom]);
    if let Some(Tile::Container(Container::Linear(linear))) = tiles.get_mut(root) {
        linear.shares.set_share(series, 0.9);
        linear.shares.set_share(bottom, 1.1);
    }
    Tree::new(egui::Id::unique("main-view"), root, tiles)
}

/// The tile of `pane`, if it is in the tree.
pub fn tile_of(tree: &Tree<Pane>, pane: Pane) -> Option<TileId> {
    tree.tiles.find_pane(&pane)
}

/// Shows `pane` as the active tab of its stack.
pub fn bring_forward(tree: &mut Tree<Pane>, pane: Pane) {
    tree.make_active(|_, tile| matches!(tile, Tile::Pane(p) if *p == pane));
}
