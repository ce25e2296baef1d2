extension Offer {
    /// `storage_cost`: what the offer's disk costs, $/GB/month, billed alone while the instance is stopped.
    public var storageCostPerGBMonth: Double? { LooseFields(raw).double("storage_cost") }
}
