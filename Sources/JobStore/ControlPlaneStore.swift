/// Everything the control plane keeps: jobs, workers, keys and fal.ai's spend (`JobStore`), the fleet's records
/// (`FleetRecordStore`) and the records the cost report is computed from (`CostRecordStore`). Both backends conform,
/// so the compiler, not a runtime cast, guarantees that the control plane's store has every part.
public protocol ControlPlaneStore: JobStore, FleetRecordStore, CostRecordStore {}

extension SQLiteJobStore: ControlPlaneStore {}
extension PostgresJobStore: ControlPlaneStore {}
