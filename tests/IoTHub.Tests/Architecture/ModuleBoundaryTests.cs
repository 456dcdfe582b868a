using NetArchTest.Rules;

namespace IoTHub.Tests.Architecture;

/// <summary>A module may use its own types, the shared Contracts and the Storage model (HubDb), never another module's internals.</summary>
public sealed class ModuleBoundaryTests
{
    private static readonly string[] Modules = ["Devices", "Connectivity", "Validation", "Aggregation", "Storage", "Gateway", "Observability", "Commands"];

    public static IEnumerable<string> ModuleNames => Modules;

    [TestCaseSource(nameof(ModuleNames))]
    public void A_module_does_not_reach_into_other_modules(string module)
    {
        var others = Modules.Where(m => m != module && m != "Storage").Select(m => $"IoTHub.{m}").ToArray();
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly)
            .That().ResideInNamespace($"IoTHub.{module}")
            .ShouldNot().HaveDependencyOnAny(others)
            .GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty, $"{module} depends on another module's types");
    }

    [Test]
    public void Storage_names_no_other_module()
    {
        var others = Modules.Where(m => m != "Storage").Select(m => $"IoTHub.{m}").ToArray();
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly).That().ResideInNamespace("IoTHub.Storage")
            .ShouldNot().HaveDependencyOnAny(others).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty);
    }

    [Test]
    public void Contracts_depend_on_no_module()
    {
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly).That().ResideInNamespace("IoTHub.Contracts")
            .ShouldNot().HaveDependencyOnAny(Modules.Select(m => $"IoTHub.{m}").ToArray()).GetResult();
        Assert.That(result.FailingTypeNames ?? [], Is.Empty);
    }

    [Test]
    public void The_rules_see_real_dependencies()
    {
        // Guards the tests above against passing vacuously: Connectivity does use the shared contracts.
        var result = Types.InAssembly(typeof(IoTHub.HubApp).Assembly).That().ResideInNamespace("IoTHub.Connectivity")
            .ShouldNot().HaveDependencyOn("IoTHub.Contracts").GetResult();
        Assert.That(result.IsSuccessful, Is.False);
    }
}
