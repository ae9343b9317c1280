#!/usr/bin/env bash
# Issue 2 on the CPU: MiniLM + P-Tuning v2 on CB (20 epochs) and RTE (3 epochs), the MiniLM recipes
# (experiment=cb_minilm / rte_minilm) with fewer epochs so that they fit a 2-core machine.
# Usage: DEEPPROMPT_DATA_DIR=../shared/data bash experiments/lab/issue2_cpu.sh [output folder]
set -euo pipefail
: "${DEEPPROMPT_DATA_DIR:?set DEEPPROMPT_DATA_DIR to the benchmark data folder}"
export DEEPPROMPT_OUTPUT_DIR=${1:-${DEEPPROMPT_OUTPUT_DIR:-outputs}} TOKENIZERS_PARALLELISM=false
python -m deepprompt.train experiment=cb_minilm trainer=cpu trainer.max_epochs=20 data.num_workers=0 \
  extras.print_config=false task_name=issue2_cb_cpu
python -m deepprompt.train experiment=rte_minilm trainer=cpu trainer.max_epochs=3 data.num_workers=0 \
  extras.print_config=false task_name=issue2_rte_cpu
