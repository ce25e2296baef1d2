import Fleet

extension FleetSettings: FleetServiceSettings {}
