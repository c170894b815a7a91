"""The seed reports' own networks, rebuilt from their text, tables and parameter counts.

    seed000.py  report 000 (Tiny ImageNet, PyTorch): seed000-clf1, -clf2, -clf3, -clf4, -clf4_2, -clf5, -clf7
    seed001.py  report 001 (Tiny ImageNet slides): seed001-linear, seed001-cnn2, seed001-cnn-multi
    seed002.py  report 002 (Tiny ImageNet): seed002-net1 (43.89% after 65 epochs), seed002-net2
    seed004.py  report 004 (Tiny ImageNet at 32 px, Keras): seed004-net, seed004-alexnet32

Report 003's VGG, ResNet and GoogLeNet are the standard families (vgg.py, resnet.py,
googlenet.py). Each module's docstring says what had to be inferred.
"""
from tinyvision.models.reproductions import seed000, seed001, seed002, seed004  # noqa: F401
