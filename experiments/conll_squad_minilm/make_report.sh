#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/conll_squad_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/conll_squad_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
R="$S/runs.jsonl"
# IGN0: run plumbing only, so lr, prompt length and trainer.max_epochs stay in the setting
IGN0="$PLUMBING --ignore data.batch_size --ignore optim.warmup_ratio --ignore trainer.max_time"
# IGN: also the per-method lr and prompt length (one fixed setting per method)
IGN="$IGN0 --ignore method.lr --ignore method.prompt.length --ignore method.num_virtual_tokens"
for m in val/f1 test/f1; do
  # 1. CoNLL-2003, 5 epochs, seeds 1-3
  $REPORT "$R:short/conll03_*" --out "$S/conll03_${m//\//_}" --metric $m --title "CoNLL-2003 entity F1 ($m), MiniLM, H100, seeds 1-3, 5 epochs" $IGN --ignore trainer.max_epochs
  # 2. 5 vs 15 vs 30 epochs at the default settings
  $REPORT "$R:short/conll03_*" "$R:long/conll03_finetune_e15_s[0-9]" "$R:long/conll03_prefix_e15_s[0-9]" "$R:long/conll03_ptuning_v2_e15_s[0-9]" \
    "$R:long/conll03_finetune_e30_s[0-9]" "$R:long/conll03_prefix_e30_s[0-9]" "$R:long/conll03_ptuning_v2_e30_s[0-9]" \
    --out "$S/conll03_epochs_${m//\//_}" --metric $m --title "CoNLL-2003 entity F1 ($m), MiniLM, 5 vs 15 vs 30 epochs (lr 2e-2 and 128 prompt tokens for ptuning_v2 and prefix, lr 5e-5 for finetune)" $IGN
  # 3. P-Tuning v2 variants (lr, prompt length, dropout, MLP reparameterization, 15 and 30 epochs) vs fine-tuning
  $REPORT "$R:long/conll03_ptuning_v2_e15_s1" "$R:long/conll03_ptuning_v2_e15_lr*" "$R:long/conll03_ptuning_v2_e15_psl*" "$R:long/conll03_ptuning_v2_e15_dropout*" "$R:long/conll03_ptuning_v2_e15_mlp*" \
    "$R:long/conll03_ptuning_v2_e30_*" "$R:long/conll03_finetune_e15_s1" "$R:long/conll03_finetune_e30_s[0-9]" \
    --out "$S/conll03_variants_${m//\//_}" --metric $m --title "CoNLL-2003 entity F1 ($m), P-Tuning v2 variants vs fine-tuning, MiniLM, seed 1 except dropout 0 and fine-tuning at 30 epochs (seeds 1-3)" $IGN0
  # 5. the CPU probe: does the MLP reparameterization train at lower rates? (300 steps, first 400 sentences)
  $REPORT "$R:mlp_probe_cpu/*" --out "$S/mlp_probe_cpu/report_${m//\//_}" --metric $m --title "CoNLL-2003 ($m, first 400 sentences), P-Tuning v2 with and without the MLP reparameterization, 300 steps, MiniLM, CPU, seed 1" --ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore data.batch_size --ignore task_name --ignore data.limit_eval_examples --ignore trainer.limit_train_batches --ignore trainer.max_epochs --ignore method.prompt.length --ignore method.prompt.dropout
done
# 4. SQuAD 1.1 (the official dev set split by article: 80% of titles train, 20% evaluate), seeds 1-3, 2 epochs
for m in val/f1 val/exact_match; do
  $REPORT "$R:short/squad_*" --out "$S/squad_${m//\//_}" --metric $m --title "SQuAD 1.1 article split of the dev set: $m, MiniLM, H100, seeds 1-3, 2 epochs" $IGN --ignore trainer.max_epochs
done
# 6. gaps to fine-tuning, dev F1 per epoch of every CoNLL-2003 run, SQuAD per seed -> summary/
$PY "$S/summarise.py" --results "$S" --runs "$R:short/*" "$R:long/*" --out "$S/summary"
