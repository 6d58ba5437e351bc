"""Synthetic datasets written in the exact native formats of TuSimple and Cityscapes.

`tusimple` renders domain-randomised highway frames with lane labels, `cityscapes` renders street
scenes with labelIds/instanceIds maps; `python -m enet_discrim.data.synthetic` is the CLI.
"""
