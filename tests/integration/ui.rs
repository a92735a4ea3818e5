//! The app, headless (egui_kittest): opening, training, live settings, the 3-D panel, bad files, stop.

use super::fixture;
use donut_explorer::config::{BetaMode, Objective};
use donut_explorer::ui::{AppOptions, DonutApp, Persisted};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use std::time::Duration;

fn quick_state() -> Persisted {
    let config = donut_explorer::config::DonutConfig {
        epochs: 200,
        ..super::quick_config()
    };
    Persisted {
        config,
        ..Default::default()
    }
}

fn harness(state: Persisted) -> Harness<'static, DonutApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui_state(
            |ui, app: &mut DonutApp| app.ui_frame(ui),
            DonutApp::with_state(state, AppOptions::default()),
        )
}

/// The app with `epochs` of the quick settings, a couple of frames drawn.
fn quick_harness(epochs: usize) -> Harness<'static, DonutApp> {
    let mut h = harness(Persisted {
        config: donut_explorer::config::DonutConfig {
            epochs,
            ..super::quick_config()
        },
        ..Default::default()
    });
    h.run_steps(2);
    h
}

/// Clicks Train and steps frames until the run has finished and its worker is idle.
fn train_to_end(h: &mut Harness<'_, DonutApp>, which: &str) {
    h.get_by_label("Train").click();
    assert!(
        step_until(h, 1500, |app| app.run.record.is_some() && !app.is_running()),
        "{which} did not finish: phase {:?}, error {:?}, steps {}",
        h.state().run.phase,
        h.state().error,
        h.state().run.history().steps.len()
    );
}

/// The app after a two-epoch run with `config` has finished (Train clicked, frames stepped).
fn trained_harness(config: donut_explorer::config::DonutConfig) -> Harness<'static, DonutApp> {
    let mut h = harness(Persisted {
        config: donut_explorer::config::DonutConfig {
            epochs: 2,
            ..config
        },
        ..Default::default()
    });
    h.run_steps(2);
    train_to_end(&mut h, "the run");
    h
}

/// Steps frames (with a little real time between them) until `done` holds; false after `max` frames.
fn step_until(h: &mut Harness<'_, DonutApp>, max: usize, done: impl Fn(&DonutApp) -> bool) -> bool {
    for _ in 0..max {
        h.step();
        if done(h.state()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn opens_on_the_sample_data_ready_to_train() {
    let mut h = harness(quick_state());
    h.run_steps(2);
    let app = h.state();
    let data = app.data.as_ref().expect("sample loaded");
    assert!(data.raw.source.contains("sample"), "{}", data.raw.source);
    assert!(app.prepared().is_some());
    h.get_by_label("Train");
    h.get_by_label("Latent space");
}

#[test]
fn train_streams_losses_and_latent_points_then_stop_ends_the_worker() {
    let mut h = harness(quick_state());
    h.run_steps(2);
    h.get_by_label("Train").click();
    let streamed = step_until(&mut h, 600, |app| {
        !app.run.history().steps.is_empty() && app.run.latest_snapshot().is_some()
    });
    assert!(streamed, "no loss or latent events within 600 frames");
    assert!(h.state().worker_alive());
    let points = h
        .state()
        .run
        .latest_snapshot()
        .map(|l| l.ends.len())
        .unwrap_or(0);
    assert!(
        points > 1000,
        "latent snapshot covers the series ({points} points)"
    );

    h.get_by_label("Stop").click();
    // Stop ends training; the best parameters are scored, then the thread ends.
    // The worker's last event (phase Idle) follows its result, so once the app is idle and the
    // thread has ended, the result (or an error) has been taken in.
    let ended = step_until(&mut h, 1500, |app| !app.worker_alive() && !app.is_running());
    assert!(ended, "the worker thread did not end after Stop");
    let app = h.state();
    assert!(app.run.record.is_some() || app.error.is_some());
}

#[test]
fn a_slider_change_during_training_reaches_the_worker() {
    let mut h = harness(quick_state());
    h.run_steps(2);
    h.get_by_label("Train").click();
    assert!(
        step_until(&mut h, 600, |app| app.run.history().steps.len() >= 3),
        "training did not start"
    );
    h.get_by_label("fixed beta").click();
    h.step();
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "beta")
        .set_value_accesskit(0.0);
    h.step();
    assert_eq!(h.state().state.config.beta_mode, BetaMode::Fixed);
    assert_eq!(h.state().state.config.beta_value, 0.0);
    let changed_at = h.state().run.history().steps.len();
    let seen = step_until(&mut h, 600, |app| {
        app.run.history().steps.len() > changed_at + 5
            && app
                .run
                .history()
                .steps
                .last()
                .is_some_and(|s| s.terms.prior == 0.0)
    });
    assert!(
        seen,
        "the prior term did not drop to 0 after beta was set to 0"
    );
    assert!(
        h.state().run.history().steps[..3]
            .iter()
            .all(|s| s.terms.prior != 0.0)
    );
    h.state_mut().shutdown_worker(Duration::from_secs(5));
}

#[test]
fn the_plain_elbo_is_chosen_in_the_controls_and_trains_the_run() {
    let mut h = quick_harness(1);
    h.get_by_label("plain ELBO").click();
    h.run_steps(2);
    assert_eq!(h.state().state.config.objective, Objective::Elbo);
    assert!(
        h.get_by_label("fixed beta").accesskit_node().is_disabled(),
        "beta belongs to the M-ELBO"
    );
    train_to_end(&mut h, "the run");
    let record = h.state().run.record.clone().unwrap();
    assert_eq!(record.config.objective, Objective::Elbo);
    assert!(record.history.steps.iter().all(|s| s.terms.is_finite()));
    h.get_by_label("M-ELBO (DONUT)").click();
    h.run_steps(2);
    assert_eq!(h.state().state.config.objective, Objective::MElbo);
}

#[test]
fn dragging_the_3d_panel_rotates_it() {
    let mut h = harness(quick_state());
    h.run_steps(2);
    h.get_by_label("Train").click();
    assert!(
        step_until(&mut h, 600, |app| app.run.latest_snapshot().is_some()),
        "no latent points"
    );
    h.run_steps(2);
    let rect = h.get_by_label("Latent space 3-D scatter").rect();
    let before = h.state().state.camera;
    let start = rect.center();
    h.hover_at(start);
    h.step();
    h.drag_at(start);
    h.step();
    for i in 1..=5 {
        h.hover_at(start + egui::vec2(12.0 * i as f32, 4.0 * i as f32));
        h.step();
    }
    h.drop_at(start + egui::vec2(60.0, 20.0));
    h.step();
    let after = h.state().state.camera;
    assert!(
        (after.yaw - before.yaw).abs() > 0.3,
        "yaw {} -> {}",
        before.yaw,
        after.yaw
    );
    assert!(
        (after.pitch - before.pitch).abs() > 0.1,
        "pitch {} -> {}",
        before.pitch,
        after.pitch
    );
    h.state_mut().shutdown_worker(Duration::from_secs(5));
}

#[test]
fn a_bad_csv_shows_an_error_and_keeps_the_old_data() {
    let mut h = harness(quick_state());
    h.run_steps(2);
    let before = h.state().data.as_ref().unwrap().raw.clone();
    let ctx = h.ctx.clone();
    h.state_mut().open_path(&ctx, fixture("text_in_number.csv"));
    assert!(
        step_until(&mut h, 300, |app| app.error.is_some()),
        "no error shown"
    );
    let app = h.state();
    let error = app.error.clone().unwrap();
    assert!(
        error.contains("text_in_number.csv") && error.contains("line 3"),
        "{error}"
    );
    assert!(
        std::sync::Arc::ptr_eq(&app.data.as_ref().unwrap().raw, &before),
        "the old data stays loaded"
    );
    h.get_by_label_contains("line 3");
}

#[test]
fn a_good_csv_replaces_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.csv");
    let mut text = String::from("timestamp,value,label\n");
    for i in 0..600 {
        text.push_str(&format!(
            "{},{},{}\n",
            1_500_000_000 + 60 * i,
            (i as f64 / 30.0).sin(),
            (i == 500) as u8
        ));
    }
    std::fs::write(&path, text).unwrap();
    let mut h = harness(quick_state());
    h.run_steps(2);
    let ctx = h.ctx.clone();
    h.state_mut().open_path(&ctx, path.clone());
    assert!(step_until(&mut h, 300, |app| app
        .data
        .as_ref()
        .is_some_and(|d| d.raw.values.len() == 600)));
    assert_eq!(h.state().state.recent_files.first(), Some(&path));
}

#[test]
fn corrupt_saved_state_falls_back_to_defaults() {
    struct Store(String);
    impl eframe::Storage for Store {
        fn get_string(&self, _key: &str) -> Option<String> {
            Some(self.0.clone())
        }
        fn set_string(&mut self, _key: &str, _value: String) {}
        fn remove_string(&mut self, _key: &str) {}
        fn flush(&mut self) {}
    }
    assert_eq!(
        Persisted::load_from(None, Some(&Store("(not valid ron".into()))),
        Persisted::default()
    );
    // A saved state whose config is out of range keeps the rest but resets the config.
    let mut state = Persisted::default();
    state.config.latent_dim = 99;
    state.controls_width = 400.0;
    let text = ron::to_string(&state).unwrap();
    let loaded = Persisted::load_from(None, Some(&Store(text)));
    assert_eq!(
        loaded.config,
        donut_explorer::config::DonutConfig::default()
    );
    assert_eq!(loaded.controls_width, 400.0);
}

#[test]
fn the_state_file_round_trips_and_a_damaged_one_falls_back_to_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("state.json");
    let mut state = Persisted::default();
    state.config.latent_dim = 7;
    state.teaching = true;
    state.recent_files = vec!["/data/kpi.csv".into()];
    state.save_file(&path).unwrap();
    // Written by rename: no temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["state.json"]);
    assert_eq!(Persisted::load_from(Some(&path), None), state);
    // The file wins over eframe's storage.
    struct Store;
    impl eframe::Storage for Store {
        fn get_string(&self, _key: &str) -> Option<String> {
            Some(ron::to_string(&Persisted::default()).unwrap())
        }
        fn set_string(&mut self, _key: &str, _value: String) {}
        fn remove_string(&mut self, _key: &str) {}
        fn flush(&mut self) {}
    }
    assert_eq!(Persisted::load_from(Some(&path), Some(&Store)), state);
    // A file cut short (as by a crash in a non-atomic write) is not half-read: eframe's storage
    // or the defaults are used instead.
    let text = std::fs::read_to_string(&path).unwrap();
    for cut in [1, text.len() / 3, text.len() - 2] {
        std::fs::write(&path, &text[..cut]).unwrap();
        assert_eq!(
            Persisted::load_from(Some(&path), None),
            Persisted::default()
        );
    }
}

#[test]
fn a_saved_run_reopens_in_the_app_with_nothing_lost() {
    let h = trained_harness(super::quick_config());
    let saved = h.state().saved_run().expect("a finished run");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.donut");
    donut_explorer::runfile::save(&path, &saved).unwrap();

    let mut fresh = harness(quick_state());
    fresh.run_steps(2);
    let ctx = fresh.ctx.clone();
    fresh.state_mut().open_run_path(&ctx, path.clone());
    assert!(
        step_until(&mut fresh, 300, |app| app.run.record.is_some()),
        "the run did not open"
    );
    let app = fresh.state();
    assert_eq!(app.saved_run().unwrap(), saved);
    assert_eq!(app.state.recent_runs.first(), Some(&path));
    assert_eq!(
        app.state.config.epochs, 2,
        "the run's settings are restored"
    );
}

#[test]
fn a_tiny_sweep_from_the_ui_fills_its_table() {
    let config = donut_explorer::config::DonutConfig {
        epochs: 1,
        n_z: 4,
        mcmc_iterations: 0,
        ..super::quick_config()
    };
    let mut h = harness(Persisted {
        config,
        ..Default::default()
    });
    h.run_steps(2);
    h.get_by_label("Sweeps…").click();
    h.run_steps(2);
    {
        let sweeps = &mut h.state_mut().sweeps;
        sweeps.preset = None;
        sweeps.param = "latent_dim".into();
        sweeps.values = "2,3".into();
        sweeps.seeds = 2;
    }
    h.run_steps(1);
    h.get_by_label("Run sweep").click();
    assert!(
        step_until(&mut h, 3000, |app| !app.sweeps.is_running()
            && app.sweeps.runs.len() == 4),
        "the sweep did not finish"
    );
    h.run_steps(2);
    let app = h.state();
    assert!(app.sweeps.errors.is_empty(), "{:?}", app.sweeps.errors);
    let rows = donut_explorer::sweep::table(&app.sweeps.variants, &app.sweeps.runs);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.best_f1.n == 2));
    // The table (and the gallery) show both variants.
    assert!(h.get_all_by_label("latent_dim=2").count() >= 1);
    assert!(h.get_all_by_label("latent_dim=3").count() >= 1);
}

#[test]
fn a_worker_panic_is_reported_and_the_app_keeps_working() {
    let mut h = harness(quick_state());
    h.run_steps(2);
    // Break the prepared data behind the app's back: its values end early, so the worker's first
    // window copy panics (index out of bounds) inside the training thread.
    let good = h.state().prepared().cloned().unwrap();
    let mut broken = (*good).clone();
    broken.values.truncate(broken.window + 5);
    h.state_mut().data.as_mut().unwrap().prepared = Some(std::sync::Arc::new(broken));
    h.get_by_label("Train").click();
    let reported = step_until(&mut h, 600, |app| {
        app.error.as_deref().is_some_and(|e| e.contains("panicked"))
    });
    assert!(
        reported,
        "the panic was not reported: {:?}",
        h.state().error
    );
    assert!(step_until(&mut h, 300, |app| !app.worker_alive() && !app.is_running()));
    // The app goes on: with good data, training runs again.
    h.state_mut().data.as_mut().unwrap().prepared = Some(good);
    h.get_by_label("Train").click();
    assert!(
        step_until(&mut h, 600, |app| !app.run.history().steps.is_empty()),
        "training did not restart"
    );
    h.state_mut().shutdown_worker(Duration::from_secs(5));
}

#[test]
fn learning_rate_10_and_injection_rate_1_do_not_crash() {
    for (lr, inj) in [(10.0, 0.01), (1e-3, 1.0)] {
        let config = donut_explorer::config::DonutConfig {
            epochs: 3,
            learning_rate: lr,
            injection_rate: inj,
            ..super::quick_config()
        };
        let mut h = harness(Persisted {
            config,
            ..Default::default()
        });
        h.run_steps(2);
        h.get_by_label("Train").click();
        let ended = step_until(&mut h, 3000, |app| {
            app.run.record.is_some() || app.error.is_some()
        });
        assert!(
            ended,
            "lr {lr}, injection {inj}: neither a result nor a message"
        );
        if let Some(e) = &h.state().error {
            assert!(e.contains("diverged"), "lr {lr}, injection {inj}: {e}");
        }
    }
}

#[test]
fn a_pinned_run_is_compared_with_the_next_one_setting_by_setting() {
    let mut h = quick_harness(1);
    train_to_end(&mut h, "the first run");
    h.get_by_label("Pin run").click();
    h.run_steps(2);
    let first = h.state().compare.pinned.clone().expect("pinned");
    assert_eq!(first.0.config.latent_dim, 5);
    assert_eq!(
        first.0.config.threads, 0,
        "the run keeps the requested (automatic) thread count, not this machine's"
    );
    assert!(h.state().compare.open, "pinning opens the compare window");

    // A second run with another latent dimension.
    h.state_mut().state.config.latent_dim = 3;
    h.state_mut().run.record = None;
    train_to_end(&mut h, "the second run");
    h.run_steps(3);
    h.get_by_label("1 setting differs: latent_dim");
    // The pinned run stays as it was.
    assert_eq!(
        h.state()
            .compare
            .pinned
            .as_ref()
            .unwrap()
            .0
            .config
            .latent_dim,
        5
    );
    // Its latent space and the current one, beside the main panel's.
    let canvases = h.query_all_by_label("Latent space 3-D scatter").count();
    assert_eq!(canvases, 3, "main panel + both runs in the compare window");
    // A selection made on the (same) data is marked in both runs' latent plots.
    let (pinned_ends, current_ends) = {
        let app = h.state();
        let pinned = app.compare.pinned.as_ref().unwrap().0.clone();
        let pinned_snapshot = pinned.history.latest_snapshot().unwrap().ends.clone();
        let current_snapshot = app.run.latest_snapshot().unwrap().ends.clone();
        (pinned_snapshot, current_snapshot)
    };
    let stretch = pinned_ends[10]..=pinned_ends[40];
    let selected: Vec<usize> = stretch.clone().collect();
    h.state_mut().selection = Some(std::sync::Arc::new(selected.clone()));
    h.run_steps(2);
    let in_stretch = |ends: &[usize]| ends.iter().filter(|e| stretch.contains(e)).count();
    assert_eq!(
        h.state().compare.marked,
        [in_stretch(&pinned_ends), in_stretch(&current_ends)],
        "the selection is marked in the pinned and the current run"
    );
    assert!(h.state().compare.marked[0] >= 31);
    h.get_by_label_contains(&format!(
        "the {} selected windows are marked",
        selected.len()
    ));
    h.get_by_label("Unpin").click();
    h.run_steps(2);
    assert!(h.state().compare.pinned.is_none());
}

#[test]
fn opening_a_longer_csv_mid_run_abandons_the_run_and_never_mixes_the_two_series() {
    // A series longer than the bundled sample: a result or latent points of the old run indexed
    // with the new series' length would read past their end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.csv");
    let mut text = String::from("timestamp,value,label\n");
    for i in 0..12_000u64 {
        let v = ((i % 288) as f64 / 288.0 * std::f64::consts::TAU).sin();
        text.push_str(&format!("{},{v:.4},0\n", 1_500_000_000 + 300 * i));
    }
    std::fs::write(&path, text).unwrap();

    let mut h = harness(quick_state());
    h.run_steps(2);
    h.get_by_label("Train").click();
    assert!(
        step_until(&mut h, 600, |app| app.run.latest_snapshot().is_some()),
        "training did not start"
    );
    let ctx = h.ctx.clone();
    h.state_mut().open_path(&ctx, path);
    assert!(
        step_until(&mut h, 600, |app| app
            .prepared()
            .is_some_and(|p| p.len() == 12_000)),
        "the longer file did not load"
    );
    assert!(!h.state().is_running(), "the old run is abandoned at once");
    // Let the abandoned worker wind down while frames keep drawing: nothing of it may show up.
    for _ in 0..100 {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let app = h.state();
    assert!(app.run.record.is_none());
    assert!(app.run.latest_snapshot().is_none() && app.run.history().snapshots.is_empty());
}

#[test]
fn the_gradients_control_picks_the_engine_of_the_next_run() {
    let config = donut_explorer::config::DonutConfig {
        epochs: 1,
        ..super::quick_config()
    };
    assert_eq!(
        config.gradients,
        donut_explorer::config::GradientEngine::Fused,
        "fused is the default"
    );
    let mut h = harness(Persisted {
        config,
        ..Default::default()
    });
    h.run_steps(2);
    h.get_by_label("autodiff").click();
    h.run_steps(1);
    assert_eq!(
        h.state().state.config.gradients,
        donut_explorer::config::GradientEngine::Autodiff
    );
    train_to_end(&mut h, "the autodiff run");
    let result = h.state().run.record.as_ref().expect("finished");
    assert_eq!(
        result.config.gradients,
        donut_explorer::config::GradientEngine::Autodiff
    );
    assert!(
        h.state()
            .run
            .history()
            .steps
            .iter()
            .all(|s| s.terms.is_finite())
    );
    assert!(!h.state().run.history().steps.is_empty());
}

#[test]
fn a_run_finishes_with_no_ui_calls_as_when_the_window_is_minimised() {
    // eframe calls only `logic()` while the window is hidden. A run whose events outnumber the
    // worker's channel (1,024) must still finish when only that path takes them: thousands of
    // steps, validations and snapshots here.
    let config = donut_explorer::config::DonutConfig {
        window: 24,
        hidden_width: 16,
        batch_size: 16,
        epochs: 20,
        valid_every_steps: 2,
        patience: 0,
        ..super::quick_config()
    };
    let mut app = DonutApp::with_state(
        Persisted {
            config,
            ..Default::default()
        },
        AppOptions::default(),
    );
    let ctx = egui::Context::default();
    app.apply(
        &ctx,
        donut_explorer::ui::commands::AppCommand::StartTraining,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while app.run.record.is_none() && app.error.is_none() && std::time::Instant::now() < deadline {
        app.pump(&ctx); // what `logic()` does, frame or no frame
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(app.error.is_none(), "{:?}", app.error);
    let history = app.run.history();
    let events = history.steps.len() / 10 + history.validations.len() + history.snapshots.len();
    assert!(
        history.validations.len() + history.steps.len() / 10 > 1024,
        "the run sent more events than the channel holds ({events})"
    );
    assert!(app.run.record.is_some(), "the run finished without a frame");
}

/// A 600-row CSV with the header `header` (values in the second column) in `dir`.
fn write_series(dir: &std::path::Path, name: &str, header: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut text = format!("{header}\n");
    for i in 0..600 {
        let t = chrono::DateTime::from_timestamp(1_500_000_000 + 60 * i, 0).unwrap();
        text.push_str(&format!(
            "{},{}\n",
            t.format("%Y-%m-%d %H:%M"),
            (i as f64 / 30.0).sin()
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_unrecognised_header_asks_which_column_is_which_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_series(dir.path(), "stock.csv", "Date,Close");
    let mut h = harness(quick_state());
    h.run_steps(2);
    let before = h.state().data.as_ref().unwrap().raw.clone();
    let ctx = h.ctx.clone();
    h.state_mut().open_path(&ctx, path.clone());
    assert!(step_until(&mut h, 300, |app| app.column_prompt.is_some()));
    h.run_steps(2);
    // The prompt shows the columns and the first rows; the data is not replaced yet.
    h.get_by_label("Which column is which?");
    assert!(h.get_all_by_label("Close").count() >= 1);
    assert!(std::sync::Arc::ptr_eq(
        &h.state().data.as_ref().unwrap().raw,
        &before
    ));
    // The first guess (Date as the time, Close as the value) loads.
    h.get_by_label("Load with these columns").click();
    assert!(step_until(&mut h, 300, |app| app
        .data
        .as_ref()
        .is_some_and(|d| d.raw.values.len() == 600)));
    // Remembered by column number (Date is column 1, Close column 2), and no label column.
    let choice = h.state().state.column_choices.get(&path).cloned().unwrap();
    assert_eq!(
        (
            choice.time.as_deref(),
            choice.value.as_deref(),
            choice.label.as_deref()
        ),
        (Some("1"), Some("2"), Some(""))
    );
    assert_eq!(h.state().data.as_ref().unwrap().raw.interval, 60);
    // Opened again, the file loads at once with the remembered columns.
    h.state_mut().data = None;
    h.state_mut().open_path(&ctx, path);
    assert!(step_until(&mut h, 300, |app| app.data.is_some()));
    assert!(h.state().column_prompt.is_none());
}

#[test]
fn without_a_system_dialog_open_csv_uses_the_in_app_browser() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "good.csv", "timestamp,value");
    let mut h = harness(quick_state());
    // egui_file marks files and folders with emoji that egui's bundled fonts lack: they draw
    // as boxes, which is what a user sees too.
    h.ctx
        .set_missing_glyph_policy(egui::MissingGlyphPolicy::Tofu);
    h.run_steps(2);
    // As on a desktop with neither xdg-desktop-portal nor zenity (rfd returns at once).
    h.state_mut().files.system_dialog_unavailable = Some("simulated".into());
    h.get_by_label("Open CSV…").click();
    h.run_steps(2);
    assert!(h.state().browser.is_open(), "the in-app browser opens");
    h.state_mut().browser.go_to(dir.path());
    h.run_steps(2);
    h.get_by_label_contains("good.csv").click();
    h.run_steps(2);
    h.get_by_label("Open").click();
    assert!(step_until(&mut h, 300, |app| app
        .data
        .as_ref()
        .is_some_and(|d| d.raw.values.len() == 600)));
    assert!(!h.state().browser.is_open());
}

#[test]
fn a_longer_window_after_a_finished_run_clears_it_instead_of_misreading_it() {
    let mut h = trained_harness(donut_explorer::config::DonutConfig {
        window: 24,
        ..super::quick_config()
    });
    h.run_steps(2);
    // The window grows past the first snapshot's windows: their old end points would index
    // before the start of the series under the new window.
    let before = h.state().state.config.clone();
    h.state_mut().state.config.window = 240;
    let ctx = h.ctx.clone();
    h.state_mut().settings_changed(&ctx, &before);
    h.run_steps(3);
    assert!(h.state().run.record.is_none());
    assert!(
        h.state()
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("cleared"))
    );
    assert_eq!(h.state().prepared().unwrap().window, 240);
}

#[test]
fn the_detection_tab_chooses_a_rule_and_applies_the_model_to_another_series() {
    let mut h = trained_harness(super::quick_config());
    let record = h.state().run.record.clone().unwrap();
    assert_eq!(h.state().run.threshold, record.threshold);
    // Choose the test labels' rule in the Detection tab: the threshold moves to its value, and
    // the panel says it is an upper bound.
    h.get_by_label("Detection").click();
    h.run_steps(2);
    let test_rule = record
        .thresholds
        .iter()
        .find(|t| t.rule == donut_explorer::eval::ThresholdRule::BestF1Test)
        .copied()
        .unwrap();
    h.get_by_role_and_label(egui::accesskit::Role::ComboBox, "threshold rule")
        .click();
    h.run_steps(3);
    h.get_by_label_contains("best F1 on test (upper bound) (")
        .click();
    h.run_steps(2);
    assert_eq!(h.state().run.threshold, test_rule);
    h.get_by_label_contains("an upper bound, not a threshold one could set in advance");

    // Apply the model to another series: the sample's last 400 rows, written as a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tomorrow.csv");
    let sample = donut_explorer::data::load_sample().unwrap();
    let n = sample.values.len();
    let mut text = String::from("timestamp,value\n");
    for i in n - 400..n {
        let v = sample.values[i];
        let cell = if v.is_nan() {
            String::new()
        } else {
            v.to_string()
        };
        text.push_str(&format!("{},{cell}\n", sample.timestamps[i]));
    }
    let points =
        ((sample.timestamps[n - 1] - sample.timestamps[n - 400]) / sample.interval) as usize + 1;
    std::fs::write(&path, text).unwrap();
    let ctx = h.ctx.clone();
    h.state_mut().apply(
        &ctx,
        donut_explorer::ui::commands::AppCommand::ApplyTo(path.clone()),
    );
    assert!(
        step_until(&mut h, 600, |app| app.applied.is_some()
            || app.error.is_some()),
        "the other series was scored"
    );
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let applied = app.applied.as_ref().unwrap();
    assert_eq!(applied.prep.len(), points);
    assert_eq!(applied.prep.mean, record.standardisation.unwrap().mean);
    assert_eq!(
        applied.detection.threshold, test_rule,
        "flagged at the rule chosen in the tab"
    );
    assert_eq!(
        applied.detection.scored_windows,
        points - record.config.window + 1
    );
    h.run_steps(2);
    h.get_by_label_contains(&format!("tomorrow.csv: {points} points"));
}

#[test]
fn one_step_advances_exactly_one_step_and_n_steps_n() {
    use donut_explorer::worker::Phase;
    let mut h = harness(quick_state());
    h.run_steps(2);
    // With no run, "1 step" starts one that pauses after its first step.
    h.get_by_label("1 step").click();
    assert!(
        step_until(&mut h, 1500, |app| app.run.phase == Phase::Paused
            && app.run.history().steps.len() == 1),
        "one step taken, then paused: {} steps, {:?}",
        h.state().run.history().steps.len(),
        h.state().run.phase
    );
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.state().run.history().steps.len(), 1, "and no more");
    h.get_by_label("1 step").click();
    assert!(step_until(&mut h, 1500, |app| app.run.phase
        == Phase::Paused
        && app.run.history().steps.len() == 2));
    // N steps.
    h.state_mut().state.step_count = 7;
    h.get_by_label("N steps").click();
    assert!(step_until(&mut h, 1500, |app| app.run.phase
        == Phase::Paused
        && app.run.history().steps.len() == 9));
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let steps: Vec<usize> = h
        .state()
        .run
        .history()
        .steps
        .iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(steps, (1..=9).collect::<Vec<_>>());
}

#[test]
fn clicking_a_series_point_opens_its_window_beside_the_reconstruction() {
    let mut h = trained_harness(super::quick_config());
    h.run_steps(2);
    let prep = h.state().prepared().cloned().unwrap();
    let end = prep.part(donut_explorer::data::Part::Test).start + 40;
    let transform = h.state().series_transform.unwrap();
    let pos =
        transform.position_from_point(&egui_plot::PlotPoint::new(end as f64, prep.raw_values[end]));
    h.hover_at(pos);
    h.run_steps(2);
    assert_eq!(
        h.state().series_hover,
        Some(end),
        "the hovered point is the window's end"
    );
    h.drag_at(pos);
    h.step();
    h.drop_at(pos);
    assert!(
        step_until(&mut h, 600, |app| app.inspection.is_some()
            || app.error.is_some()),
        "the click opened the reconstruction"
    );
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let shown = &app.inspection.as_ref().unwrap().window;
    // The click lands on the highest-scoring point within 6 pixels of the pointer.
    let record = app.run.record.as_ref().unwrap();
    let per_px = transform.dvalue_dpos()[0].abs();
    let reach = (6.0 * per_px).round() as usize;
    assert!(
        shown.end.abs_diff(end) <= reach,
        "{} for {end} (reach {reach})",
        shown.end
    );
    let best = (end - reach..=end + reach)
        .max_by(|&a, &b| {
            record.scores[a]
                .unwrap()
                .total_cmp(&record.scores[b].unwrap())
        })
        .unwrap();
    assert_eq!(shown.end, best);
    assert_eq!(
        shown.input,
        prep.window_values(shown.end),
        "that window's values"
    );
    let score = record.scores[shown.end].unwrap();
    assert!((shown.score - score).abs() < 1e-3 * score.abs().max(1.0));
    let shown_end = shown.end;
    h.run_steps(2);
    h.get_by_label_contains(&format!("(point {shown_end})"));
}

#[test]
fn a_lesson_runs_to_its_end_and_sets_the_measured_beside_the_published() {
    let mut h = quick_harness(1);
    h.get_by_label("Lessons").click();
    h.run_steps(2);
    h.get_by_label("Gaussian or Student-t latent").click();
    h.run_steps(2);
    h.get_by_label_contains("A heavy-tailed latent");
    let clouds_before = h.query_all_by_label("Latent space 3-D scatter").count();
    h.get_by_label("Run lesson").click();
    assert!(
        step_until(&mut h, 3000, |app| !app.sweeps.is_running()
            && app.sweeps.runs.len() == 2),
        "both variants ran: {} runs, errors {:?}",
        h.state().sweeps.runs.len(),
        h.state().sweeps.errors
    );
    h.run_steps(2);
    h.get_by_label_contains("Done: 2 runs");
    // Each variant's latent space is shown in the lesson.
    assert_eq!(
        h.query_all_by_label("Latent space 3-D scatter").count(),
        clouds_before + 2,
        "a latent plot per variant"
    );
    // The published figures stand beside the measured ones.
    h.get_by_label("0.642");
    h.get_by_label("0.593");
    assert_eq!(h.state().sweeps.preset, Some("latent-dist"));
    assert!(
        h.state()
            .sweeps
            .runs
            .iter()
            .all(|r| r.record.metrics.is_some())
    );
}

/// Shift + drag from `from` to `to`, a frame per move.
fn shift_drag(h: &mut Harness<'_, DonutApp>, from: egui::Pos2, to: egui::Pos2) {
    let shift = egui::Modifiers::SHIFT;
    h.event(egui::Event::ModifiersChanged(shift));
    h.hover_at(from);
    h.step();
    h.event(egui::Event::PointerButton {
        pos: from,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: shift,
    });
    h.step();
    for k in 1..=6 {
        h.hover_at(from + (to - from) * (k as f32 / 6.0));
        h.step();
    }
    h.event(egui::Event::PointerButton {
        pos: to,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: shift,
    });
    h.step();
    h.event(egui::Event::ModifiersChanged(egui::Modifiers::NONE));
    h.run_steps(2);
}

#[test]
fn a_series_brush_marks_latent_points_and_a_cloud_box_marks_series_windows() {
    let mut h = trained_harness(donut_explorer::config::DonutConfig {
        latent_dim: 3,
        ..super::quick_config()
    });
    h.run_steps(3);
    // Brush a stretch of the series: its windows are selected and marked in the cloud.
    let prep = h.state().prepared().cloned().unwrap();
    let (a, b) = (prep.window + 200, prep.window + 400);
    let t = h.state().series_transform.unwrap();
    let y = prep.mean;
    let at = |x: usize| t.position_from_point(&egui_plot::PlotPoint::new(x as f64, y));
    shift_drag(&mut h, at(a), at(b));
    let selection = h
        .state()
        .selection
        .clone()
        .expect("the brush selected windows");
    let (first, last) = (selection[0], *selection.last().unwrap());
    assert!(
        first.abs_diff(a) <= 3 && last.abs_diff(b) <= 3,
        "{first}..{last} for {a}..{b}"
    );
    assert_eq!(selection.len(), last - first + 1);
    let snapshot = h.state().run.latest_snapshot().unwrap().clone();
    let in_stretch = snapshot
        .ends
        .iter()
        .filter(|e| (first..=last).contains(e))
        .count();
    assert!(in_stretch > 0);
    assert_eq!(
        h.state().latent_cache_marked(),
        in_stretch,
        "every window of the stretch is marked in the cloud"
    );
    h.get_by_label("Clear selection").click();
    h.run_steps(2);
    assert!(h.state().selection.is_none());

    // A box over the whole cloud selects every window of the snapshot on the series.
    let canvas = h.get_by_label("Latent space 3-D scatter").rect();
    shift_drag(
        &mut h,
        canvas.left_top() + egui::vec2(2.0, 2.0),
        canvas.right_bottom() - egui::vec2(2.0, 2.0),
    );
    let selection = h
        .state()
        .selection
        .clone()
        .expect("the box selected windows");
    assert!(!selection.is_empty() && selection.windows(2).all(|w| w[0] < w[1]));
    assert!(
        selection
            .iter()
            .all(|e| snapshot.ends.binary_search(e).is_ok())
    );
    h.get_by_label_contains(&format!("{} windows selected", selection.len()));
}

#[test]
fn settings_outside_the_sliders_spans_are_kept_as_given() {
    let options = AppOptions {
        settings: vec![
            "seed=1234".into(),
            "window=720".into(),
            "epochs=1000".into(),
        ],
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui_state(
            |ui, app: &mut DonutApp| app.ui_frame(ui),
            DonutApp::with_state(Persisted::default(), options),
        );
    h.run_steps(6);
    // The sliders were drawn (their spans end at 99, 480 and 512), and changed nothing.
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "window W");
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "seed");
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "epochs");
    let c = &h.state().state.config;
    assert_eq!((c.seed, c.window, c.epochs), (1234, 720, 1000));
    assert_eq!(h.state().error, None);
}

#[test]
fn a_saved_run_with_a_window_beyond_the_slider_reopens_with_it() {
    let config = donut_explorer::config::DonutConfig {
        window: 720,
        ..super::quick_config()
    };
    let h = trained_harness(config);
    let saved = h.state().saved_run().expect("a finished run");
    assert_eq!(saved.config.window, 720);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.donut");
    donut_explorer::runfile::save(&path, &saved).unwrap();

    let mut fresh = harness(quick_state());
    fresh.run_steps(2);
    let ctx = fresh.ctx.clone();
    fresh.state_mut().open_run_path(&ctx, path);
    assert!(
        step_until(&mut fresh, 300, |app| app.run.record.is_some()),
        "the run did not open"
    );
    fresh.run_steps(6);
    let app = fresh.state();
    assert_eq!(app.state.config.window, 720);
    assert!(app.run.record.is_some(), "the opened run was kept");
    assert_eq!(app.saved_run().unwrap(), saved);
}

#[test]
fn training_shows_preview_scores_that_the_final_pass_replaces() {
    let config = donut_explorer::config::DonutConfig {
        epochs: 40,
        preview_n_z: 4,
        preview_mcmc_iterations: 1,
        patience: 0,
        ..super::quick_config()
    };
    let mut h = harness(Persisted {
        config,
        ..Default::default()
    });
    h.run_steps(2);
    h.get_by_label("Train").click();
    assert!(
        step_until(&mut h, 1500, |app| app.run.preview.is_some()),
        "no preview while training: phase {:?}, error {:?}",
        h.state().run.phase,
        h.state().error
    );
    assert!(
        h.state().run.record.is_none(),
        "the preview came before the end"
    );
    h.run_steps(1);
    let preview = h.state().run.preview.clone().unwrap();
    assert_eq!(preview.record.config.n_z, 4);
    assert!(preview.record.scores.iter().any(Option::is_some));
    // Marked as a preview, with its n_z, on the series.
    h.get_by_label_contains("Preview: scored with n_z 4");
    assert_eq!(
        h.state()
            .run
            .shown_record()
            .map(|(r, preview)| (r.scores.len(), preview)),
        Some((preview.record.scores.len(), true))
    );
    assert!(
        step_until(&mut h, 3000, |app| app.run.record.is_some()
            && !app.is_running()),
        "the run did not finish"
    );
    h.run_steps(2);
    let app = h.state();
    assert!(
        app.run.preview.is_none(),
        "the final pass replaced the preview"
    );
    assert_eq!(
        app.run.shown_record().map(|(_, preview)| preview),
        Some(false)
    );
    assert_eq!(app.run.record.as_ref().unwrap().config.n_z, 8);
    assert!(h.query_by_label_contains("Preview: scored with").is_none());
}

#[test]
fn the_fleet_tab_trains_a_folder_and_opens_a_kpi_with_its_model() {
    let dir = tempfile::tempdir().unwrap();
    super::fleet::write_fleet(dir.path(), 2, 5);
    std::fs::write(
        dir.path().join("broken.csv"),
        "timestamp,value\n1500000000,1\n1500000300,abc\n",
    )
    .unwrap();
    let config = donut_explorer::config::DonutConfig {
        epochs: 2,
        window: 24,
        hidden_width: 16,
        threads: 1,
        ..super::quick_config()
    };
    let mut h = harness(Persisted {
        config,
        ..Default::default()
    });
    h.run_steps(2);
    h.get_by_label("Fleet").click();
    h.run_steps(2);
    h.state_mut().fleet.folder_text = dir.path().display().to_string();
    h.get_by_label("Open folder").click();
    assert!(
        step_until(&mut h, 600, |app| app.fleet.rows.len() == 3
            && !app.fleet.is_busy()),
        "the folder was not read: {:?}",
        h.state().fleet.error
    );
    h.run_steps(1);
    assert_eq!(h.get_all_by_label("not trained").count(), 3);
    h.get_by_label("Train fleet").click();
    assert!(
        step_until(&mut h, 3000, |app| app.fleet.progress == Some((3, 3))
            && !app.fleet.is_busy()),
        "the fleet did not finish: {:?}",
        h.state().fleet.progress
    );
    h.run_steps(2);
    let state = |name: &str| {
        h.state()
            .fleet
            .rows
            .iter()
            .find(|r| r.kpi.name == name)
            .map(|r| r.state)
            .unwrap()
    };
    use donut_explorer::fleet::KpiState;
    assert_eq!(state("kpi0"), KpiState::Trained);
    assert_eq!(state("kpi1"), KpiState::Trained);
    assert_eq!(state("broken"), KpiState::Failed);
    assert_eq!(h.get_all_by_label("trained").count(), 2);
    h.get_by_label_contains("line 3");
    // A click opens that KPI with its model.
    h.get_by_label("kpi1").click();
    assert!(
        step_until(&mut h, 600, |app| app.run.record.is_some()),
        "the KPI's run did not open: {:?}",
        h.state().error
    );
    let app = h.state();
    assert!(
        app.run
            .record
            .as_ref()
            .unwrap()
            .source
            .ends_with("kpi1.csv")
    );
    assert!(app.data.as_ref().unwrap().raw.source.ends_with("kpi1.csv"));
}

#[test]
fn the_tune_tab_streams_trials_and_a_click_loads_one_into_the_controls() {
    let config = donut_explorer::config::DonutConfig {
        epochs: 3,
        window: 30,
        hidden_width: 24,
        patience: 4,
        ..super::quick_config()
    };
    let mut h = harness(Persisted {
        config: config.clone(),
        ..Default::default()
    });
    h.run_steps(2);
    h.get_by_label("Tune").click();
    h.run_steps(2);
    {
        let tune = &mut h.state_mut().tune;
        tune.trials = 6;
        tune.jobs = 2;
        for (d, on) in &mut tune.dimensions {
            *on = matches!(d.key.as_str(), "latent_dim" | "learning_rate");
        }
    }
    h.get_by_label("Search").click();
    // Trials appear while the search runs.
    assert!(
        step_until(&mut h, 3000, |app| app.tune.is_running()
            && app.tune.trials_seen.iter().any(|t| t.objective().is_some())),
        "no trial reported figures while the search ran: {:?}",
        h.state().tune.error
    );
    h.run_steps(1);
    assert!(
        h.query_all_by_label_contains("at rung 0").count() > 0,
        "no trial at its first rung in the table"
    );
    assert!(
        step_until(&mut h, 6000, |app| !app.tune.is_running()),
        "the search did not end"
    );
    h.run_steps(2);
    let app = h.state();
    assert!(app.tune.error.is_none(), "{:?}", app.tune.error);
    let outcome = app
        .tune
        .outcome
        .as_ref()
        .expect("the search ended with an outcome");
    assert_eq!(outcome.trials.len(), 6);
    let best = outcome.best.expect("a trial completed");
    // Another drawn trial than the best (trial 0 is the base settings, the controls' own),
    // clicked: its settings go into the controls, nothing trains.
    let other = (1..6).find(|&i| i != best).unwrap();
    let expected = app.tune.settings_of(other).unwrap();
    assert_ne!(expected, app.state.config);
    // The table sits below the plots, out of the tab's view: clicked as a screen reader would.
    h.get_by_label(&format!("trial {other}")).click_accesskit();
    h.run_steps(2);
    let app = h.state();
    assert_eq!(app.state.config, expected, "notice: {:?}", app.notice);
    assert!(!app.is_running() && app.run.record.is_none());
    // "Use the best" loads the search's choice.
    h.get_by_label("Use the best").click_accesskit();
    h.run_steps(2);
    let app = h.state();
    assert_eq!(Some(app.state.config.clone()), app.tune.settings_of(best));
    assert!(!app.is_running());
}
