"""`clustersim calibrate`: measurements -> the model's free constants.

nccl_tests.py reads nccl-tests output; collectives.py places its runs on a topology and predicts
them; runs.py reads measured training runs and predicts them; fit.py chooses what the data
identifies and fits it (bounded, robust, with leave-one-out); study.py runs the two fits in order;
profile.py writes the profile that scenario/calibration.py reads back.
"""
