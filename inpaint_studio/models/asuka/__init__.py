"""ASUKA (Wang, Cao et al.): the MAE prior, the alignment module and the inpainting-specialised decoder."""
