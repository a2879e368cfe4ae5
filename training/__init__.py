"""Applications that make ReID training data with the pipeline (``python -m training.mine``).

The models, losses, datasets and the trainer itself stay in ``reid_models``, which imports
nothing above it; mining runs the pipeline's detector and tracker, so it lives here.
"""
