#!/usr/bin/env bash
# Issue 2 on the GPU machine: the main job (P-Tuning v2, MiniLM, SST-2) plus, side by side on the same GPU,
# full fine-tuning on SST-2 and P-Tuning v2 on RTE and CB (each job its own process).
#   device run: source experiments/lab/device_env.sh; bash experiments/lab/issue2_sst2_gpu.sh
set -u
source experiments/lab/device_env.sh
T0=$(date +%s)
run() { local name=$1; shift; python3 -m deepprompt.train "$MINILM" trainer=gpu extras.print_config=false "$@" > "$OUT/$name.log" 2>&1; echo "$name exit $? after $(( $(date +%s) - T0 )) s"; }
run sst2_ptuning_v2 experiment=sst2_minilm task_name=issue2_sst2 &
run sst2_finetune experiment=sst2_minilm method=finetune task_name=issue2_sst2_finetune &
run rte_ptuning_v2 experiment=rte_minilm task_name=issue2_rte &
run cb_ptuning_v2 experiment=cb_minilm task_name=issue2_cb &
wait
pack_runs issue2_runs
for f in "$DEEPPROMPT_OUTPUT_DIR"/*/runs/*/metrics.json; do
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['task'], d['method'], d['status'], 'best', {k: round(v,4) for k,v in d.get('best',{}).items() if k.startswith('val/')}, 'last', {k: round(v,4) for k,v in d.get('last',{}).items() if k.startswith('val/')}, d.get('wall_time_s'), 's', d.get('error',''))" "$f"
done
