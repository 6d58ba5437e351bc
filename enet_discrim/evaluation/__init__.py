"""Official metrics: TuSimple accuracy/FP/FN and Cityscapes instance AP."""
