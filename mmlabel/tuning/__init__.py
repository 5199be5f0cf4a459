"""Hyperparameter search with Optuna (`mmlabel tune`): the search space, the study and its workers, the results."""
