"""Classical searches on the m_jj spectrum: the background fit, BumpHunter and the mass scan."""
