"""Generators of synthetic video datasets for demos and tests (not data loaders: `i3d.data` reads what they write).

`toy`: the motion dataset in UCF101's layout (classes differ only by how a shape moves).
`fake_toy`: a real/fake dataset in DFDC's layout. Both write their videos with `flow.video.write_video`.
`faces`: real faces with known boxes (scikit-image's photographs seen through a panning, zooming window), for the
face-crop stage's tests and benchmark.
"""
