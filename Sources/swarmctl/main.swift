await SwarmCtl.start()
