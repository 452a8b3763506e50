"""Evaluation: the paper's metrics and the evaluation of models against gray.

    metrics.py    the paper's Table 2 metrics (average MAE, MSE a*b*, MSE L*a*b*), PSNR, SSIM, colorfulness
    evaluator.py  `python -m keras_colorize.evaluate`: models x data sets -> table, grid, JSON
"""
