//! How `dkraid-sim` prints a boot report: a timeline and a summary for people, one JSON object
//! for programs.

use crate::boot::Report;

/// Print `report` to stdout.
pub fn print_report(report: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    println!("{:>14}  {:<16}  {:<48}  result", "virtual time", "queue", "call");
    for e in &report.timeline {
        println!(
            "{:>11.3} ms  {:<16}  {:<48}  {}",
            e.start_ns as f64 / 1e6,
            e.queue,
            e.call,
            e.result
        );
    }
    if !report.logs.is_empty() {
        println!();
        println!("log:");
        for l in &report.logs {
            println!("{:>11.3} ms  {:<16}  {}", l.time_ns as f64 / 1e6, l.queue, l.message);
        }
    }
    println!();
    println!("seed               {}", report.seed);
    println!("stage              {}", report.stage);
    if let Some(v) = &report.variant {
        println!("variant            {v}");
    }
    println!("IOVMPageSize       {}", report.page_size);
    println!("timebase           {}", report.timebase);
    println!("PCI device         {}", report.pci_device);
    if let Some(p) = &report.personality {
        println!("personality        {p}");
    }
    println!("outcome            {}", report.outcome);
    println!("registered         {}", report.registered);
    println!("tasks mapped       {}", report.tasks_mapped);
    println!("queues registered  {}", report.queues_registered.join(", "));
    println!(
        "targets            {}",
        if report.targets.is_empty() {
            "none".to_string()
        } else {
            report.targets.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        }
    );
    if let Some(state) = &report.firmware_state {
        println!("controller         firmware {state}");
    }
    for v in &report.volumes {
        println!(
            "volume             {} {} {}, {:.2} GiB, drives {:?}, strip {} KiB, cache {}",
            v.id,
            serde_name(&v.level),
            serde_name(&v.state),
            v.capacity_bytes as f64 / (1u64 << 30) as f64,
            v.drives,
            v.strip_bytes / 1024,
            serde_name(&v.write_cache)
        );
    }
    for d in &report.disks {
        println!(
            "disk               target {} LUN {}: {} {} rev {}, serial {}",
            d.target, d.lun, d.vendor, d.product, d.revision, d.serial
        );
        println!(
            "                   {} bytes ({:.2} GiB), {}-byte blocks, write cache {}",
            d.capacity_bytes,
            d.capacity_bytes as f64 / (1u64 << 30) as f64,
            d.block_size,
            if d.write_cache { "enabled" } else { "disabled" }
        );
        println!("                   partition scheme: {}", d.partition_scheme);
    }
    println!("virtual time       {:.3} ms", report.virtual_time_ns as f64 / 1e6);
    println!("violations         {}", report.violations.len());
    for v in &report.violations {
        println!("  {v}");
    }
}

/// A value's name as the JSON report spells it (`RAID5`, `Optimal`, `WB`).
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
