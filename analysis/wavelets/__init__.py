"""Wavelet p-value maps of spectra and the autoencoders that score them."""
