//! PyTorch's transfer-learning / fine-tuning tutorials
//! (`beginner/transfer_learning_tutorial` and
//! `beginner/finetuning_torchvision_models_tutorial`) in kiln: take a
//! pretrained network, replace its classifier head with a new one for the
//! new task, freeze the backbone (`requires_grad_(false)`) and train only
//! the head ("feature extraction"), then unfreeze it and fine-tune
//! everything with a smaller learning rate for the backbone than for the
//! head: one optimizer, two parameter groups, as in `torch.optim`'s
//! per-parameter options.
//!
//! There is no download: the "pretrained" backbone is trained here first,
//! on task A (which of 4 noisy patterns a 16×16 image shows), and is then
//! reused for task B (3 classes that group those patterns). The printout
//! follows the tutorials' `train_model` (`Epoch 0/2`, `train Loss: …
//! Acc: …`, `val Loss: … Acc: …`, `Best val Acc`) and the fine-tuning
//! tutorial's `Params to learn:` list.
//!
//! ```text
//! cargo run --example tutorial_finetune
//! ```
//!
//! It prints:
//!
//! ```text
//! Pretraining the backbone on task A (4 classes) ...
//! task A val Acc: 0.9688
//!
//! Classifier(
//!   (backbone): Backbone(
//!   ...
//!   (fc): Linear(in_features=32, out_features=3, bias=True)
//! )
//! Params to learn:
//!          fc.weight
//!          fc.bias
//! Epoch 0/2
//! ----------
//! train Loss: 0.9528 Acc: 0.5918
//! val Loss: 0.4158 Acc: 0.7695
//! ...
//! Training complete in 0m 0s
//! Best val Acc: 0.972656
//! backbone max |change|: 0 (frozen), head max |change|: 0.6018
//!
//! Fine-tuning everything, group learning rates [0.001, 0.01]
//! Epoch 0/1
//! ...
//! Best val Acc: 0.976562
//! backbone max |change|: 0.0029, head max |change|: 0.0506
//! ```

use kiln::StateDict;
use kiln::data::{DataLoader, TensorDataset};
use kiln::loss::{Reduction, cross_entropy};
use kiln::optim::{ParamGroup, SGD};
use kiln::prelude::*;
use std::io::Write;
use std::time::Instant;

network! {
    /// The feature extractor that is pretrained, then reused.
    pub struct Backbone(input: [1, 16, 16]) {
        features: [
            Conv2d(1 -> 8, kernel: 3, padding: 1), ReLU, MaxPool2d(2),
            Conv2d(8 -> 16, kernel: 3, padding: 1), ReLU, MaxPool2d(2),
        ],
        flatten,
        embed: [Linear(16 * 4 * 4 -> 32), ReLU],
    }
}

network! {
    /// The backbone plus a linear classifier head for `C` classes.
    pub struct Classifier<const C: usize>(input: [1, 16, 16]) {
        backbone: Backbone,
        fc: Linear(32 -> C),
    }
}

/// Side of the square images.
const SIZE: usize = 16;
/// Task B's class of each of task A's patterns.
const TASK_B_CLASS: [i64; 4] = [0, 1, 2, 2];

/// What a run produced, for the tests.
pub struct Outcome {
    /// Task A validation accuracy of the pretrained model.
    pub pretrain_acc: f64,
    /// The pretrained backbone's state.
    pub pretrained_backbone: Vec<Vec<f32>>,
    /// The new model's backbone right after loading the pretrained weights.
    pub loaded_backbone: Vec<Vec<f32>>,
    /// The new model's backbone after training with it frozen.
    pub frozen_backbone_after: Vec<Vec<f32>>,
    /// The new head before and after training with the backbone frozen.
    pub head_before_after: (Vec<Vec<f32>>, Vec<Vec<f32>>),
    /// Whether any backbone parameter had a gradient while frozen.
    pub frozen_backbone_got_grad: bool,
    /// The names printed under "Params to learn".
    pub params_to_learn: Vec<String>,
    /// Best task B validation accuracy with the backbone frozen.
    pub feature_extract_acc: f64,
    /// The backbone after fine-tuning everything.
    pub finetuned_backbone: Vec<Vec<f32>>,
    /// The head after fine-tuning everything.
    pub finetuned_head: Vec<Vec<f32>>,
    /// Best task B validation accuracy after fine-tuning everything.
    pub finetune_acc: f64,
}

/// A copy of a state dict's values (they are live views of the model).
fn snapshot(state: &StateDict) -> Vec<Vec<f32>> {
    state.iter().map(|(_, t)| t.to_vec::<f32>()).collect()
}

/// A deep copy of a state dict, like `copy.deepcopy(model.state_dict())`.
fn deep_copy(state: &StateDict) -> StateDict {
    state
        .iter()
        .map(|(k, t)| {
            (
                k.to_string(),
                Tensor::from_vec(t.to_vec::<f32>(), t.shape()),
            )
        })
        .collect()
}

/// Largest absolute difference between two snapshots.
fn max_change(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `n` images of one of the 4 `patterns` (chosen at random) plus noise,
/// with the pattern's index as the task A label.
fn images(patterns: &Tensor, n: usize) -> (Tensor, Tensor) {
    let labels = Tensor::randint(0, 4, [n]);
    let x = patterns.index_select(0, &labels) + Tensor::randn([n, 1, SIZE, SIZE]) * 1.5;
    (x, labels)
}

/// Task A or B loaders (train shuffled, val in order) from the same images.
fn loaders(
    (x, y): &(Tensor, Tensor),
    (vx, vy): &(Tensor, Tensor),
    task_b: bool,
) -> [DataLoader<TensorDataset, Vec<Tensor>>; 2] {
    let relabel = |y: &Tensor| {
        if task_b {
            Tensor::from_vec(TASK_B_CLASS.to_vec(), [4]).index_select(0, y)
        } else {
            y.shallow_clone()
        }
    };
    [
        DataLoader::new(TensorDataset::new(vec![x.shallow_clone(), relabel(y)]))
            .batch_size(32)
            .shuffle(true)
            .seed(0),
        DataLoader::new(TensorDataset::new(vec![vx.shallow_clone(), relabel(vy)])).batch_size(64),
    ]
}

/// The tutorials' `train_model`: `num_epochs` epochs of a train and a val
/// phase, printing loss and accuracy; keeps and finally loads the weights
/// of the best val epoch. Returns the best val accuracy.
fn train_model<const C: usize>(
    model: &mut Classifier<C>,
    optimizer: &mut SGD,
    loaders: &[DataLoader<TensorDataset, Vec<Tensor>>; 2],
    num_epochs: usize,
    out: &mut dyn Write,
) -> Result<f64, Box<dyn std::error::Error>> {
    let since = Instant::now();
    let mut best_model_wts = deep_copy(&model.state_dict());
    let mut best_acc = 0.0;
    for epoch in 0..num_epochs {
        writeln!(out, "Epoch {epoch}/{}", num_epochs - 1)?;
        writeln!(out, "{}", "-".repeat(10))?;
        // Each epoch has a training and validation phase.
        for (phase, loader) in ["train", "val"].iter().zip(loaders) {
            if *phase == "train" {
                model.train(); // Set model to training mode
            } else {
                model.eval(); // Set model to evaluate mode
            }
            let (mut running_loss, mut running_corrects, mut seen) = (0.0, 0usize, 0usize);
            for batch in loader {
                let batch = batch?;
                let (inputs, labels) = (&batch[0], &batch[1]);
                let n = inputs.size(0);
                // Forward; track history only in train.
                let _grad = autograd::set_grad_enabled(*phase == "train");
                let outputs = model.forward(inputs);
                let loss = cross_entropy(&outputs, labels, Reduction::Mean, 0.0);
                if *phase == "train" {
                    optimizer.zero_grad();
                    loss.backward();
                    optimizer.step();
                }
                let preds = outputs.argmax(1, false);
                running_loss += loss.item() * n as f64;
                running_corrects += preds.eq(labels).to_dtype(DType::I64).sum().item() as usize;
                seen += n;
            }
            let epoch_loss = running_loss / seen as f64;
            let epoch_acc = running_corrects as f64 / seen as f64;
            writeln!(out, "{phase} Loss: {epoch_loss:.4} Acc: {epoch_acc:.4}")?;
            // Deep copy the model.
            if *phase == "val" && epoch_acc > best_acc {
                best_acc = epoch_acc;
                best_model_wts = deep_copy(&model.state_dict());
            }
        }
        writeln!(out)?;
    }
    let elapsed = since.elapsed().as_secs();
    writeln!(
        out,
        "Training complete in {}m {}s",
        elapsed / 60,
        elapsed % 60
    )?;
    writeln!(out, "Best val Acc: {best_acc:.6}")?;
    // Load best model weights.
    model.load_state_dict(&best_model_wts, true)?;
    Ok(best_acc)
}

/// The tutorial, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<Outcome, Box<dyn std::error::Error>> {
    manual_seed(0);
    let device = Device::Cpu;
    let patterns = Tensor::randn([4, 1, SIZE, SIZE]);
    let (train, val) = (images(&patterns, 512), images(&patterns, 256));

    // 1. The "pretrained" model: trained on task A.
    writeln!(out, "Pretraining the backbone on task A (4 classes) ...")?;
    let mut pretrained = Classifier::<4>::new(&device);
    let mut opt = SGD::new(pretrained.parameters(), 0.01).momentum(0.9);
    let mut sink = std::io::sink();
    let pretrain_acc = train_model(
        &mut pretrained,
        &mut opt,
        &loaders(&train, &val, false),
        6,
        &mut sink,
    )?;
    writeln!(out, "task A val Acc: {pretrain_acc:.4}\n")?;

    // 2. A new model for task B: the pretrained backbone, a new head.
    let mut model = Classifier::<3>::new(&device);
    let report = model
        .backbone
        .load_state_dict(&pretrained.backbone.state_dict(), true)?;
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    writeln!(out, "{model}")?;
    let loaded_backbone = snapshot(&model.backbone.state_dict());

    // Feature extraction: freeze the backbone, train only the new head.
    model.backbone.requires_grad_(false);
    writeln!(out, "Params to learn:")?;
    let mut params_to_learn = Vec::new();
    for (name, param) in model.named_parameters() {
        if param.requires_grad() {
            writeln!(out, "\t {name}")?;
            params_to_learn.push(name);
        }
    }
    // Two parameter groups: the backbone with a 10× smaller learning rate
    // than the head (the default). While frozen it gets no gradient, so
    // the optimizer leaves it alone.
    let mut optimizer = SGD::with_groups(
        vec![
            ParamGroup::new(model.backbone.parameters()).lr(1e-3),
            ParamGroup::new(model.fc.parameters()),
        ],
        1e-2,
    )
    .momentum(0.9);
    let head_before = snapshot(&model.fc.state_dict());
    let task_b = loaders(&train, &val, true);
    let feature_extract_acc = train_model(&mut model, &mut optimizer, &task_b, 3, out)?;
    let frozen_backbone_got_grad = model
        .backbone
        .parameters()
        .iter()
        .any(|p| p.grad().is_some());
    let frozen_backbone_after = snapshot(&model.backbone.state_dict());
    let head_after = snapshot(&model.fc.state_dict());
    writeln!(
        out,
        "backbone max |change|: {} (frozen), head max |change|: {:.4}\n",
        max_change(&loaded_backbone, &frozen_backbone_after),
        max_change(&head_before, &head_after)
    )?;

    // Fine-tuning: unfreeze the backbone; the same optimizer now updates
    // it too, with its group's smaller learning rate.
    model.backbone.requires_grad_(true);
    let lrs: Vec<f64> = optimizer
        .param_groups()
        .iter()
        .map(|g| g.get_lr())
        .collect();
    writeln!(out, "Fine-tuning everything, group learning rates {lrs:?}")?;
    let finetune_acc = train_model(&mut model, &mut optimizer, &task_b, 2, out)?;
    let finetuned_backbone = snapshot(&model.backbone.state_dict());
    let finetuned_head = snapshot(&model.fc.state_dict());
    writeln!(
        out,
        "backbone max |change|: {:.4}, head max |change|: {:.4}",
        max_change(&frozen_backbone_after, &finetuned_backbone),
        max_change(&head_after, &finetuned_head)
    )?;

    Ok(Outcome {
        pretrain_acc,
        pretrained_backbone: snapshot(&pretrained.backbone.state_dict()),
        loaded_backbone,
        frozen_backbone_after,
        head_before_after: (head_before, head_after),
        frozen_backbone_got_grad,
        params_to_learn,
        feature_extract_acc,
        finetuned_backbone,
        finetuned_head,
        finetune_acc,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_backbone_is_unchanged_and_only_the_head_learns() {
        let o = run(&mut std::io::sink()).unwrap();
        // The pretrained backbone learned task A and was carried over.
        assert!(o.pretrain_acc > 0.9, "task A acc {}", o.pretrain_acc);
        assert_eq!(o.loaded_backbone, o.pretrained_backbone);

        // Frozen: no gradient, not a single bit changed.
        assert_eq!(o.params_to_learn, ["fc.weight", "fc.bias"]);
        assert!(!o.frozen_backbone_got_grad);
        assert_eq!(o.frozen_backbone_after, o.loaded_backbone);
        // The new head did learn, and the pretrained features suffice.
        let (before, after) = &o.head_before_after;
        assert!(max_change(before, after) > 0.05);
        assert!(o.feature_extract_acc > 0.9, "{}", o.feature_extract_acc);

        // Unfrozen: the backbone moves too, by its group's smaller steps.
        let backbone = max_change(&o.frozen_backbone_after, &o.finetuned_backbone);
        assert!(backbone > 0.0);
        assert!(o.finetune_acc >= o.feature_extract_acc - 0.02);
    }
}
