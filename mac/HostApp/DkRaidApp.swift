// DkRaid.app: the host app that carries the dkraid dext (Contents/Library/SystemExtensions,
// "Embed System Extensions" in project.yml) and asks macOS to activate or deactivate it.
// docs/MAC-BUILD.md describes building, signing and the checks after activation.

import SwiftUI

@main
struct DkRaidApp: App {
    @StateObject private var activator = ExtensionActivator()

    var body: some Scene {
        WindowGroup {
            ContentView(activator: activator)
                .frame(minWidth: 480, minHeight: 220)
        }
    }
}

struct ContentView: View {
    @ObservedObject var activator: ExtensionActivator

    var body: some View {
        VStack(alignment: .leading, spacing: 12) {
            Text("dkraid SCSI/RAID driver").font(.headline)
            Text("Driver extension: \(activator.extensionIdentifier ?? "none embedded")")
                .font(.system(.body, design: .monospaced))
            HStack {
                Button("Activate") { activator.activate() }
                    .disabled(activator.busy || activator.extensionIdentifier == nil)
                Button("Deactivate") { activator.deactivate() }
                    .disabled(activator.busy || activator.extensionIdentifier == nil)
            }
            Text(activator.status)
                .foregroundColor(activator.failed ? .red : .primary)
                .fixedSize(horizontal: false, vertical: true)
            Spacer()
        }
        .padding()
    }
}
