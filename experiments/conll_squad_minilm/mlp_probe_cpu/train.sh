# from the repository root, with the venv (make install) and DEEPPROMPT_DATA_DIR=../shared/data:
source .venv/bin/activate
for cfg in "mlp 2e-2" "mlp 5e-3" "mlp 1e-3" "mlp 3e-4" "none 2e-2"; do
  set -- $cfg
  python -m deepprompt.train data=conll2003 data.batch_size=32 trainer.max_epochs=1 +trainer.limit_train_batches=300 \
    data.limit_eval_examples=400 method=ptuning_v2 method.prompt.length=128 method.prompt.reparam=$1 \
    method.prompt.dropout=0.0 method.lr=$2 data.num_workers=0 extras.print_config=false '~callbacks.rich_progress_bar' \
    +trainer.enable_progress_bar=false task_name=mlp_probe seed=1 hydra.run.dir=outputs/mlp_probe/$1_lr$2 > <tmp>/mlp_probe_$1_$2.log 2>&1
  echo "$cfg rc=$?"
done
