"""
@misc{Tessera,
title = "Tessera: cryo-EM single-particle protocols",
author = "Tessera developers",
journal = "software, version 0.1.0",
year = "2026",
}

@article{Chen2013,
title = "High-resolution noise substitution to measure overfitting and validate resolution in 3D structure determination by single particle electron cryomicroscopy",
journal = "Ultramicroscopy",
volume = "135",
pages = "24 - 35",
year = "2013",
doi = "10.1016/j.ultramic.2013.06.004",
author = "Chen, Shaoxia and McMullan, Greg and Faruqi, Abdul R. and Murshudov, Garib N. and Short, Judith M. and Scheres, Sjors H. W. and Henderson, Richard",
}

@article{Rosenthal2003,
title = "Optimal determination of particle orientation, absolute hand, and contrast loss in single-particle electron cryomicroscopy",
journal = "J. Mol. Biol.",
volume = "333",
number = "4",
pages = "721 - 745",
year = "2003",
doi = "10.1016/j.jmb.2003.07.013",
author = "Rosenthal, Peter B. and Henderson, Richard",
}
"""
