"""Generators of synthetic video datasets for demos and tests (not data loaders: `i3d.data` reads what they write).

`toy`: the toy action scenes (classes: the object's colour family and how it moves, or its motion alone), drawn
from the textures, colours and shapes of `toy_textures`; `toy_dataset` writes them in UCF101's layout.
`fake_toy`: a real/fake dataset in DFDC's layout. Both writers use `flow.video.write_video`.
`faces`: real faces with known boxes (scikit-image's photographs seen through a panning, zooming window), for the
face-crop stage's tests and benchmark.
"""
