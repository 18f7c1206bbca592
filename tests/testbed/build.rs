//! Builds the simulated dext: translates `iig/*.iig` with the test-bed's iig translator,
//! compiles the DriverKit shim, and compiles the dext's own sources (`dext/*.cpp`, unchanged)
//! once for the shipped build and once per broken variant. Each build renames the dext's
//! classes with the preprocessor so all of them link into one binary.

#[path = "src/iig.rs"]
#[allow(dead_code)]
mod iig;
#[path = "src/variants.rs"]
#[allow(dead_code)]
mod variants;

use std::path::{Path, PathBuf};

/// Names the dext defines with external linkage, renamed per build.
const RENAMED: &[&str] = &[
    "DkRaidController",
    "DkRaidController_IVars",
    "DkRaidUserClient",
    "DkRaidUserClient_IVars",
    "DkRaidPlatformInit",
    "DkRaidPlatformRelease",
    "DkRaidTimeInit",
    "DkRaidTicksToNs",
    "DkRaidNsToTicks",
    "DkRaidNowNs",
];

/// The user client's class info symbol of a build.
fn user_client_symbol(variant: Option<&variants::Variant>) -> String {
    format!("{}_user_client", variants::class_info_symbol(variant))
}

fn cpp_build(includes: &[PathBuf]) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .flag_if_supported("-fno-exceptions");
    for inc in includes {
        build.include(inc);
    }
    build
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let iig_out = out.join("iig");
    std::fs::create_dir_all(&iig_out).unwrap();

    // 1. iig: the controller and the user client.
    let translate = |name: &str| {
        let iig_path = root.join(format!("iig/{name}.iig"));
        println!("cargo:rerun-if-changed={}", iig_path.display());
        let text = std::fs::read_to_string(&iig_path).unwrap();
        let file = iig::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", iig_path.display()));
        std::fs::write(
            iig_out.join(format!("{name}.h")),
            iig::generate_header(&file, &format!("iig/{name}.iig")),
        )
        .unwrap();
        file
    };
    let file = translate("DkRaidController");
    let user_client_file = translate("DkRaidUserClient");

    let shim_include = manifest.join("shim/include");
    let includes =
        [shim_include.clone(), iig_out.clone(), root.join("rust-core/include"), root.join("dext")];
    for dir in ["shim/include", "shim/src"] {
        rerun_dir(&manifest.join(dir));
    }
    rerun_dir(&root.join("dext"));
    println!("cargo:rerun-if-changed={}", root.join("rust-core/include/dkraid.h").display());

    // 2. The shim, once.
    cpp_build(&includes)
        .file(manifest.join("shim/src/shim.cpp"))
        .file(manifest.join("shim/src/locks.cpp"))
        .compile("dksim_shim");

    // The Rust side's table of variant builds.
    let mut table = String::from("extern \"C\" {\n");
    table.push_str(&format!("    fn {}() -> *const DkSimClassInfo;\n", user_client_symbol(None)));
    for v in variants::VARIANTS {
        table.push_str(&format!(
            "    fn {}() -> *const DkSimClassInfo;\n",
            variants::class_info_symbol(Some(v))
        ));
        table.push_str(&format!(
            "    fn {}() -> *const DkSimClassInfo;\n",
            user_client_symbol(Some(v))
        ));
    }
    table.push_str("}\n\n/// The class info of a variant build.\nfn variant_class_info(name: &str) -> Option<*const DkSimClassInfo> {\n    match name {\n");
    for v in variants::VARIANTS {
        table.push_str(&format!(
            "        // SAFETY: a generated function returning a pointer to static class info.\n        \"{}\" => Some(unsafe {{ {}() }}),\n",
            v.name,
            variants::class_info_symbol(Some(v))
        ));
    }
    table.push_str("        _ => None,\n    }\n}\n");
    table.push_str("\n/// The user client's class info of a build (None: the shipped build).\nfn user_client_class_info(variant: Option<&str>) -> Option<*const DkSimClassInfo> {\n    match variant {\n");
    table.push_str(&format!(
        "        // SAFETY: a generated function returning a pointer to static class info.\n        None => Some(unsafe {{ {}() }}),\n",
        user_client_symbol(None)
    ));
    for v in variants::VARIANTS {
        table.push_str(&format!(
            "        // SAFETY: a generated function returning a pointer to static class info.\n        Some(\"{}\") => Some(unsafe {{ {}() }}),\n",
            v.name,
            user_client_symbol(Some(v))
        ));
    }
    table.push_str("        _ => None,\n    }\n}\n");
    std::fs::write(out.join("variant_class_info.rs"), table).unwrap();

    // 3. The dext: the shipped build and every variant.
    let mut builds: Vec<Option<&variants::Variant>> = vec![None];
    builds.extend(variants::VARIANTS.iter().map(Some));
    for (index, variant) in builds.iter().enumerate() {
        let symbol = variants::class_info_symbol(*variant);
        let glue = iig_out.join(format!("DkRaidController_glue_{index}.cpp"));
        std::fs::write(&glue, iig::generate_glue(&file, "DkRaidController.h", &symbol)).unwrap();
        let user_client_glue = iig_out.join(format!("DkRaidUserClient_glue_{index}.cpp"));
        std::fs::write(
            &user_client_glue,
            iig::generate_glue(
                &user_client_file,
                "DkRaidUserClient.h",
                &user_client_symbol(*variant),
            ),
        )
        .unwrap();
        let mut build = cpp_build(&includes);
        for name in RENAMED {
            build.define(name, Some(format!("{name}__build{index}").as_str()));
        }
        if let Some(v) = variant {
            build.define(v.macro_name, Some("1"));
        }
        build
            .file(root.join("dext/DkRaidController.cpp"))
            .file(root.join("dext/DkRaidPlatform.cpp"))
            .file(root.join("dext/DkRaidUserClient.cpp"))
            .file(&glue)
            .file(&user_client_glue)
            .compile(&format!("dkraid_dext_{index}"));
    }
}

fn rerun_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rerun_dir(&path);
            } else {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
