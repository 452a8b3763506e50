"""Training: the run config, the trainer, its flags and callbacks, the work-directory lock, speed settings.

    config.py    TrainConfig: every setting of a run, checked; what a resumed run must keep
    trainer.py   train(config): data, model, optimizer, resume, fit, best/final models
    flags.py     the absl flags of `python -m keras_colorize.train` (defaults from TrainConfig)
    validation.py  validation with the paper metrics, image grid (callback PaperValidation)
    monitors.py  step counter, throughput, console lines, divergence guard
    checkpoints.py  best model, resumable checkpoints
    run_lock.py  one trainer per work directory
    perf.py      CPU speed settings (fused BatchNorm)
"""
