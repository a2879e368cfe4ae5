"""Tools around the pipeline: the ground-truth format and its matching
(``tools.ground_truth``) and the ground-truth authoring command
(``python -m tools.propose_ground_truth``)."""
